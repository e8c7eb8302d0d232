package app

import _ "github.com/flashsale/flashsale/platform/testing/localstack" // want `import 'github.com/flashsale/flashsale/platform/testing/localstack' is not allowed from list 'production'`
