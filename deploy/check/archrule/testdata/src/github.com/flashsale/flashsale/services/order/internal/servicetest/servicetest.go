// The harness starts other services to test order with them: allowed.
package servicetest

import _ "github.com/flashsale/flashsale/services/marketing"
