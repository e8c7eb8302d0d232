package postgres

// HeldStockStatement is the page of the orders holding stock, for its
// plan test.
const HeldStockStatement = heldStock
