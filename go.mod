module github.com/veil-sandbox/veil

go 1.26

require (
	github.com/google/btree v1.1.3
	github.com/google/subcommands v1.2.0
	github.com/opencontainers/runtime-spec v1.3.0
	golang.org/x/sys v0.49.0
	google.golang.org/protobuf v1.36.12
)
