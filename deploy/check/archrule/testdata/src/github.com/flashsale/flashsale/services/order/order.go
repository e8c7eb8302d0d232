package order

import (
	_ "github.com/flashsale/flashsale/platform/clock"
	_ "github.com/flashsale/flashsale/services/marketing" // want `import 'github.com/flashsale/flashsale/services/marketing' is not allowed from list 'services/order'`
)
