module github.com/courierhq/courier/services/api-gateway

go 1.26.0

replace (
	github.com/courierhq/courier/pkg => ../../pkg
	github.com/courierhq/courier/proto => ../../proto
)
