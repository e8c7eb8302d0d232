// One harness may use another.
package localstack

import _ "github.com/flashsale/flashsale/platform/testing/consultest"
