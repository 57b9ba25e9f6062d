module github.com/courierhq/courier/tests/e2e

go 1.26.0

replace (
	github.com/courierhq/courier/pkg => ../../pkg
	github.com/courierhq/courier/proto => ../../proto
)
