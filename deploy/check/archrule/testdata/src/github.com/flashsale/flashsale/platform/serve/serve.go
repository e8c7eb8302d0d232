package serve

import _ "github.com/flashsale/flashsale/platform/testing/consultest" // want `import 'github.com/flashsale/flashsale/platform/testing/consultest' is not allowed from list 'production'`
