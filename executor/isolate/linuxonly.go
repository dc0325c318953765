//go:build !linux

package isolate

var _ int = "sandboxd's isolate backend is Linux only"
