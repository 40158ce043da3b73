package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"dashboard/activity"
	"dashboard/db"
	"dashboard/downloader"
	"dashboard/settings"
)

// apiError is an error with the status, code and message the client sees.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

type envelope struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// handleError is the one place an error becomes a response: every handler,
// 404, body limit and recovered panic ends here.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	e := s.classify(c, err)
	if e.Status >= 500 && e.Code == "internal" {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
	}
	// Errors fasthttp raises before any middleware (an oversized body)
	// still carry the security headers.
	setSecurityHeaders(c)
	var body envelope
	body.Error.Code, body.Error.Message = e.Code, e.Message
	return c.Status(e.Status).JSON(body)
}

// classify maps err to what the client sees; it has no side effects, so the
// request logger can ask it for the status too.
func (s *Server) classify(c *fiber.Ctx, err error) *apiError {
	var (
		ae  *apiError
		fe  *fiber.Error
		inv *settings.InvalidError
		act *activity.InvalidError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &inv):
		return &apiError{http.StatusBadRequest, inv.Code, inv.Message}
	case errors.As(err, &act):
		return &apiError{http.StatusBadRequest, "invalid_activity", act.Reason}
	case errors.Is(err, settings.ErrUnreachable):
		return &apiError{http.StatusBadGateway, "hf_unreachable", "Could not reach HuggingFace to check the token (" + err.Error() + "). Nothing was saved; try again in a moment."}
	case errors.Is(err, downloader.ErrNotFound):
		return &apiError{http.StatusNotFound, "not_found", sentence(err, downloader.ErrNotFound)}
	case errors.Is(err, db.ErrNotFound):
		return &apiError{http.StatusNotFound, "not_found", sentence(err, db.ErrNotFound)}
	case errors.Is(err, downloader.ErrAlreadyQueued):
		return &apiError{http.StatusConflict, "already_queued", sentence(err, downloader.ErrAlreadyQueued)}
	case errors.Is(err, downloader.ErrAlreadyInstalled):
		return &apiError{http.StatusConflict, "already_installed", sentence(err, downloader.ErrAlreadyInstalled)}
	case errors.Is(err, downloader.ErrTokenRequired):
		return &apiError{http.StatusForbidden, "hf_token_required", sentence(err, downloader.ErrTokenRequired)}
	case errors.Is(err, downloader.ErrFinished):
		return &apiError{http.StatusConflict, "already_finished", sentence(err, downloader.ErrFinished)}
	case errors.Is(err, downloader.ErrNotRetryable):
		return &apiError{http.StatusConflict, "not_retryable", sentence(err, downloader.ErrNotRetryable)}
	case errors.As(err, &fe):
		return fiberError(c, fe)
	case errors.Is(err, context.Canceled):
		return &apiError{499, "cancelled", "The request was cancelled."}
	}
	return &apiError{http.StatusInternalServerError, "internal", "Something went wrong on the dashboard; the log has the details."}
}

func fiberError(c *fiber.Ctx, fe *fiber.Error) *apiError {
	switch fe.Code {
	case http.StatusNotFound:
		return &apiError{fe.Code, "not_found", fmt.Sprintf("There is nothing at %s %s.", c.Method(), c.Path())}
	case http.StatusMethodNotAllowed:
		return &apiError{fe.Code, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s.", c.Method(), c.Path())}
	case http.StatusRequestEntityTooLarge:
		return &apiError{fe.Code, "body_too_large", fmt.Sprintf("The request body is larger than %d KiB.", BodyLimit>>10)}
	case http.StatusInternalServerError:
		return &apiError{fe.Code, "internal", "Something went wrong on the dashboard; the log has the details."}
	}
	code := "bad_request"
	if fe.Code == http.StatusUnauthorized {
		code = "unauthorized"
	}
	return &apiError{fe.Code, code, capital(fe.Message)}
}

// sentence turns "there is no preset \"X\": not found" into "There is no
// preset \"X\"." for a person to read; the code already says the category.
func sentence(err, sentinel error) string {
	msg := strings.TrimSuffix(err.Error(), ": "+sentinel.Error())
	if msg == "" || msg == sentinel.Error() {
		msg = sentinel.Error()
	}
	msg = capital(msg)
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

func capital(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
