package model

import (
	"errors"
	"fmt"
)

// Code names a kind of failure. It reaches clients as the "code" of the
// error envelope and of a failed download, so the values never change.
type Code string

// Codes of requests that were refused or failed.
const (
	CodeInternal        Code = "internal" // a fault of ours; the log has the details
	CodeCancelled       Code = "cancelled"
	CodeNotFound        Code = "not_found"
	CodeInvalidJSON     Code = "invalid_json"
	CodeUnknownField    Code = "unknown_field"
	CodeInvalidQuery    Code = "invalid_query"
	CodeBadRequest      Code = "bad_request"
	CodeBodyTooLarge    Code = "body_too_large"
	CodeUnsupportedType Code = "unsupported_media_type"
	CodeMethod          Code = "method_not_allowed"
	CodeUpgradeRequired Code = "upgrade_required"
	CodeForbiddenOrigin Code = "forbidden_origin"
	CodeCrossSite       Code = "cross_site"
	CodeUnauthorized    Code = "unauthorized"
	CodeWrongPassword   Code = "wrong_password"
	CodeTooManyAttempts Code = "too_many_attempts"
	CodeUnknownHost     Code = "unknown_host"     // Host is none of the dashboard's names (DNS rebinding)
	CodeTooManyClients  Code = "too_many_clients" // the WebSocket limits are reached

	CodeInvalidSetting  Code = "invalid_setting"
	CodeInvalidToken    Code = "invalid_token"
	CodeHFUnreachable   Code = "hf_unreachable"
	CodeInvalidActivity Code = "invalid_activity"

	// Civitai could not be asked about a token (no answer, a redirect, an
	// error of its own); nothing was saved.
	CodeCivitaiUnreachable Code = "civitai_unreachable"

	CodeAlreadyQueued    Code = "already_queued"
	CodeAlreadyInstalled Code = "already_installed"
	CodePathConflict     Code = "path_conflict" // another preset's different file is at one of the preset's paths
	CodeAlreadyFinished  Code = "already_finished"
	CodeNotRetryable     Code = "not_retryable"
	// One of the preset's files is being downloaded or verified right now.
	CodeBusy Code = "busy"
	// The preset has no file in place to verify.
	CodeNotInstalled Code = "not_installed"

	// Another dashboard manages the volume; this one only reads (ReadOnlyError).
	CodeReadOnly Code = "read_only"
	// The disk or quota holding the database is full (ENOSPC, EDQUOT).
	CodeDiskFull Code = "disk_full"
	// The database file was deleted or replaced under the running dashboard.
	CodeDatabaseUnavailable Code = "database_unavailable"

	CodeInvalidWorkflow Code = "invalid_workflow"
)

// Codes a failed download carries (Download.Error.Code). CodeNotFound and
// CodeCancelled (a user's cancel, in activity details) are used there too.
const (
	CodeHFTokenRequired Code = "hf_token_required" // 401 from HuggingFace; also refuses an install up front
	CodeHFAccessDenied  Code = "hf_access_denied"  // 403: the licence is not accepted
	CodeChecksum        Code = "checksum_mismatch"
	CodeDiskSpace       Code = "insufficient_disk_space"
	CodeNetwork         Code = "network"
	CodeInterrupted     Code = "interrupted" // the dashboard stopped while it ran
	CodeHTTP            Code = "http_error"  // an answer that is neither retryable nor one of the above
	CodeDisk            Code = "disk_error"  // writing the models folder failed
	CodeSizeMismatch    Code = "size_mismatch"

	// 401 from Civitai: no token or a revoked one; also refuses an install
	// up front when Civitai says a file needs a login and no token is set.
	CodeCivitaiTokenRequired Code = "civitai_token_required"
	// 403 from Civitai: early access, or the creator does not allow it.
	CodeCivitaiAccessDenied Code = "civitai_access_denied"
)

// Error is the one error shape of the dashboard: what went wrong, as a code
// for programs and a sentence a person can act on. Packages return it (often
// wrapped with %w for context); the server maps its code to an HTTP status
// and sends Code and Message as they are.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Err is the underlying cause, for logs; it never reaches a client.
	Err error `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Unwrap lets errors.Is and errors.As see the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error whose message is the formatted sentence.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode is the code of the *Error in err's chain, CodeInternal when
// there is none, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
