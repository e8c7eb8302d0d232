package postgres

// StuckStatement is the statement of Ledger.Stuck.
const StuckStatement = paymentSelect + stuckPayments
