module github.com/courierhq/courier/cmd/courier-capacity

go 1.26.0
