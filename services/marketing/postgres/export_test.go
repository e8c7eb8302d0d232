package postgres

// UsedCouponsStatement is the page of the orders holding a coupon, for
// its plan test.
const UsedCouponsStatement = usedCoupons
