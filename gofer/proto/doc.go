// Package proto owns the gofer protocol shared by the gofer server (package
// gofer) and its client in the sentry (fs/gofer): the protobuf messages
// (gofer.proto, compiled into gofer.pb.go), the version numbers, and Conn,
// which moves one message per SOCK_SEQPACKET packet with FDs riding along
// as SCM_RIGHTS. gofer/PROTOCOL.md describes the rules.
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative gofer.proto
