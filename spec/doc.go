// Package spec holds the types and rules that the protocol, the executors and
// the tests share: run requests and their limits, verdicts and metrics, box
// options, and the error codes of the protocol. It depends on nothing else in
// sandboxd.
package spec
