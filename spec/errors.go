package spec

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Code is a protocol error code: a short snake_case word documented in PROTOCOL.md.
type Code string

const (
	CodeBadJSON         Code = "bad_json"
	CodeLineTooLong     Code = "line_too_long"
	CodeUnknownCommand  Code = "unknown_command"
	CodeUnknownField    Code = "unknown_field"
	CodeInvalidArgument Code = "invalid_argument"
	CodeMissingLimit    Code = "missing_limit"
	CodeNoSuchBox       Code = "no_such_box"
	CodeNoSuchFile      Code = "no_such_file"
	CodeNoSuchRuntime   Code = "no_such_runtime"
	CodeRuntimeExists   Code = "runtime_exists"
	CodeNixUnavailable  Code = "nix_unavailable"
	CodeExecFailed      Code = "exec_failed"
	CodeQuotaExceeded   Code = "quota_exceeded"
	CodeTooManyBoxes    Code = "too_many_boxes"
	CodeShuttingDown    Code = "shutting_down"
	CodeBoxClosed       Code = "box_closed"
	CodeBoxReset        Code = "box_reset"
	CodeCancelled       Code = "cancelled"
	CodeNoSuchRequest   Code = "no_such_request"
	CodeUnsupported     Code = "unsupported"
	CodeInternal        Code = "internal"
)

// Error is an error that carries a protocol code. Errors from anywhere in
// sandboxd may wrap one; the protocol replies with the innermost code found.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the protocol code carried by err, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// MaxQuoted bounds how much of a judge's or a program's string an error
// message repeats: a message stays short whatever it was sent.
const MaxQuoted = 100

// Quote quotes s for an error message as %q does (bytes that are not UTF-8
// come out as \x escapes), keeping at most its first MaxQuoted bytes.
func Quote(s string) string {
	return strconv.Quote(Clip(s, MaxQuoted))
}

// Clip keeps at most the first max bytes of s, cut between characters and
// marked with "…".
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && cut > max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Ended is the error of a request that ctx ended before it was done: the
// cause ctx was cancelled with when that is a protocol error (close_box and
// reset_box end the runs of their box so), else shutting_down; what says
// what became of the request.
func Ended(ctx context.Context, what string) error {
	var e *Error
	if errors.As(context.Cause(ctx), &e) {
		return e
	}
	return Errorf(CodeShuttingDown, "%s: sandboxd is shutting down", what)
}
