//go:build !linux

package cgroup

var _ int = "sandboxd's cgroup package is Linux only"
