module github.com/veil-sandbox/veil

go 1.26.0

require golang.org/x/sys v0.49.0
