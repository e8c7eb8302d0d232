// Tests of production packages may use the harnesses.
package serve

import _ "github.com/flashsale/flashsale/platform/testing/consultest"
