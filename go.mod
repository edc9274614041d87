module github.com/veil-sandbox/veil

go 1.26.0

require golang.org/x/sys v0.49.0

require (
	github.com/google/btree v1.1.3 // indirect
	github.com/google/subcommands v1.2.0 // indirect
	github.com/opencontainers/runtime-spec v1.3.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
