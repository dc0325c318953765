package main

// sandboxd is linked statically: every start of it, and of each box's init
// (the same binary), then skips the dynamic loader's work (mapping libc,
// relocating, resolving symbols), 1.5 to 4 ms of a 25 ms start on these
// machines, where each page fault costs about 20 µs. glibc warns at link
// time that getaddrinfo (Go's cgo resolver) and dlopen (SQLite's extension
// loading) would need its shared libraries at run time: sandboxd resolves
// no host name and loads no extension; `make build` leaves both out
// (Makefile: TAGS).

// #cgo LDFLAGS: -static
import "C"
