package clock

import _ "github.com/flashsale/flashsale/services/marketing" // want `is not allowed from list 'platform'`
