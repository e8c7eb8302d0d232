package postgres

// DueStatement is the statement with which Ledger.Due reads its page.
const DueStatement = paymentSelect + duePayments
