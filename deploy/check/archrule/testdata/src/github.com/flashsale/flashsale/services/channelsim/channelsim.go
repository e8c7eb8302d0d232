package channelsim

import (
	_ "github.com/flashsale/flashsale/services/payment/app" // want `import 'github.com/flashsale/flashsale/services/payment/app' is not allowed from list 'services/channelsim'`
	_ "github.com/flashsale/flashsale/services/payment/channel/wire"
)
