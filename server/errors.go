package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

// statusOf is the HTTP status of each error code a request can fail with.
// A code missing here is a fault of ours: 500.
var statusOf = map[model.Code]int{
	model.CodeInvalidJSON:     http.StatusBadRequest,
	model.CodeUnknownField:    http.StatusBadRequest,
	model.CodeInvalidQuery:    http.StatusBadRequest,
	model.CodeBadRequest:      http.StatusBadRequest,
	model.CodeInvalidSetting:  http.StatusBadRequest,
	model.CodeInvalidToken:    http.StatusBadRequest,
	model.CodeInvalidActivity: http.StatusBadRequest,
	model.CodeInvalidWorkflow: http.StatusBadRequest,

	model.CodeUnauthorized:  http.StatusUnauthorized,
	model.CodeWrongPassword: http.StatusUnauthorized,

	model.CodeHFTokenRequired: http.StatusForbidden,
	model.CodeCrossSite:       http.StatusForbidden,
	model.CodeForbiddenOrigin: http.StatusForbidden,

	// Install refuses a preset whose Civitai files need a login up front.
	model.CodeCivitaiTokenRequired: http.StatusForbidden,
	model.CodeCivitaiUnreachable:   http.StatusBadGateway,

	model.CodeNotFound: http.StatusNotFound,
	model.CodeMethod:   http.StatusMethodNotAllowed,

	model.CodeUnknownHost: http.StatusMisdirectedRequest,

	model.CodeAlreadyQueued:    http.StatusConflict,
	model.CodeAlreadyInstalled: http.StatusConflict,
	model.CodePathConflict:     http.StatusConflict,
	model.CodeAlreadyFinished:  http.StatusConflict,
	model.CodeNotRetryable:     http.StatusConflict,
	model.CodeBusy:             http.StatusConflict,
	model.CodeNotInstalled:     http.StatusConflict,
	model.CodeReadOnly:         http.StatusConflict,

	model.CodeBodyTooLarge:    http.StatusRequestEntityTooLarge,
	model.CodeUnsupportedType: http.StatusUnsupportedMediaType,
	model.CodeUpgradeRequired: http.StatusUpgradeRequired,
	model.CodeTooManyAttempts: http.StatusTooManyRequests,
	model.CodeTooManyClients:  http.StatusServiceUnavailable,
	model.CodeCancelled:       499, // the client went away; nginx's number for it
	model.CodeInternal:        http.StatusInternalServerError,
	model.CodeHFUnreachable:   http.StatusBadGateway,
	model.CodeDiskFull:        http.StatusInsufficientStorage,
	// The database file was deleted or replaced: a restart is the fix.
	model.CodeDatabaseUnavailable: http.StatusServiceUnavailable,
}

// internalError is what a client sees of a fault of ours.
var internalError = &model.Error{Code: model.CodeInternal, Message: "Something went wrong on the dashboard; the log has the details."}

type envelope struct {
	Error *model.Error `json:"error"`
}

// handleError is the one place an error becomes a response: every handler,
// 404, body limit and recovered panic ends here.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	err = s.refusedBeforeLogin(c, err)
	status, e := s.classify(c, err)
	if e.Code == model.CodeInternal {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
	}
	// Errors fasthttp raises before any middleware (an oversized body)
	// still carry the security headers.
	setSecurityHeaders(c)
	return c.Status(status).JSON(envelope{Error: e})
}

// classify maps err to the status and the error the client sees; it has no
// side effects, so the request logger can ask it for the status too.
func (s *Server) classify(c *fiber.Ctx, err error) (int, *model.Error) {
	var fe *fiber.Error
	switch {
	case errors.As(err, &fe):
		err = fiberError(c, fe)
	case errors.Is(err, context.Canceled):
		err = model.Errorf(model.CodeCancelled, "The request was cancelled.")
	}
	e := model.AsError(err)
	if e == nil {
		return http.StatusInternalServerError, internalError
	}
	status, ok := statusOf[e.Code]
	if !ok || status == http.StatusInternalServerError {
		return http.StatusInternalServerError, internalError
	}
	return status, e
}

// fiberError turns the errors Fiber raises itself (no route, a body over the
// limit) into ours.
func fiberError(c *fiber.Ctx, fe *fiber.Error) *model.Error {
	switch fe.Code {
	case http.StatusNotFound:
		return model.Errorf(model.CodeNotFound, "There is nothing at %s %s.", c.Method(), c.Path())
	case http.StatusMethodNotAllowed:
		return model.Errorf(model.CodeMethod, "%s is not allowed on %s.", c.Method(), c.Path())
	case http.StatusRequestEntityTooLarge:
		if n := bodyLimit(c); n >= 1<<20 {
			return model.Errorf(model.CodeBodyTooLarge, "The request body is larger than %d MiB.", n>>20)
		}
		return model.Errorf(model.CodeBodyTooLarge, "The request body is larger than %d KiB.", BodyLimit>>10)
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return model.Errorf(model.CodeBadRequest, "The request could not be handled (%s).", fe.Message)
	}
	return &model.Error{Code: model.CodeInternal, Err: fe}
}
