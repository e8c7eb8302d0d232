// A service's test harness may start the dependencies.
package servicetest

import _ "github.com/flashsale/flashsale/platform/testing/localstack"
