//go:build tools

// Package tools pins franz-go so that `go test -c github.com/twmb/franz-go/pkg/kgo` builds kgo's
// own integration tests from exactly the sources recorded in go.sum.
package tools

import _ "github.com/twmb/franz-go/pkg/kgo"
