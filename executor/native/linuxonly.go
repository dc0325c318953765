//go:build !linux

package native

var _ int = "sandboxd's native backend is Linux only"
