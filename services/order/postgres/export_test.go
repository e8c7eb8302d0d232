package postgres

// OrderReadStatements returns, for each way of reading orders, the
// statements that read the orders' lines and their promotions.
func OrderReadStatements() map[string][]string {
	out := map[string][]string{}
	for name, r := range map[string]orderRead{"by id": orderByID, "the user's list": ordersOfUser, "by key": regularByKey, "a flash-sale order by key": seckillByKey} {
		out[name] = []string{r.lines, r.promotions}
	}
	return out
}

// SweepStatements returns the statements that read a page of a sweep's
// candidates, by sweep.
func SweepStatements() map[string]string {
	return map[string]string{
		"the expiry backstop":       overdueSeckill,
		"the backstop's stock owed": seckillStockDue,
		"the refund sweep":          pendingRefunds,
		"the regular give-backs":    unreleasedRegular,
	}
}
