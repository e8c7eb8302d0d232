module github.com/flashsale/flashsale/services/marketing

go 1.26.0

require (
	github.com/flashsale/flashsale/platform v0.0.0
	github.com/flashsale/flashsale/proto v0.0.0
)

replace (
	github.com/flashsale/flashsale/platform => ../../platform
	github.com/flashsale/flashsale/proto => ../../proto
)
