//go:build !linux

package executortest

var _ int = "sandboxd's executortest package is Linux only"
