// Pinned for kafka_testbed.franz_go: franz-go's own kgo integration tests, compiled with
// `go test -c github.com/twmb/franz-go/pkg/kgo`. To upgrade: `go get github.com/twmb/franz-go@vX.Y.Z`
// then `go mod tidy` here (tools.go keeps the requirement), and commit go.mod and go.sum.
module kafka-testbed/franz-go

go 1.26.0

require github.com/twmb/franz-go v1.22.3

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.1 // indirect
)
