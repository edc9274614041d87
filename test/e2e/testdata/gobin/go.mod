module veil.test/gobin

go 1.22
