package inbox

// SetMigrateScanPage makes MigrateLegacyAcks read n messages a page, until
// the test ends.
func SetMigrateScanPage(t interface{ Cleanup(func()) }, n int) {
	old := migrateScanPage
	migrateScanPage = n
	t.Cleanup(func() { migrateScanPage = old })
}
