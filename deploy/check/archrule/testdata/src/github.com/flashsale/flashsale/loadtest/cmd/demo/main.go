// The dev tools (the demo, the load test, deploy/local) may use the harnesses.
package main

import _ "github.com/flashsale/flashsale/platform/testing/localstack"
