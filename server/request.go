package server

import (
	"bytes"
	"dashboard/model"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// decodeJSON reads the request body into v strictly: one JSON value, no
// unknown fields, right types. Its errors say what to fix.
func decodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return model.Errorf(model.CodeInvalidJSON, "The request body is empty: send a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return model.Errorf(model.CodeInvalidJSON, "The request body has something after the JSON object.")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return model.Errorf(model.CodeInvalidJSON, "The request body is not valid JSON (at byte %d: %s).", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return model.Errorf(model.CodeInvalidJSON, "The request body must be a JSON object, not %s.", typ.Value)
		}
		return model.Errorf(model.CodeInvalidJSON, "Field %q must be %s, not %s.", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return model.Errorf(model.CodeInvalidJSON, "The request body is cut short: it is not complete JSON.")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return model.Errorf(model.CodeUnknownField, "Unknown field %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return model.Errorf(model.CodeInvalidJSON, "The request body could not be read as JSON: %s.", err.Error())
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice":
		return "a list"
	}
	return "of another type"
}

// queryInt reads an optional positive integer query parameter.
func queryInt(c *fiber.Ctx, name string, def, min, max int64) (int64, error) {
	raw := c.Query(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < min || n > max {
		return 0, model.Errorf(model.CodeInvalidQuery, "Query parameter %s must be a whole number from %d to %d.", name, min, max)
	}
	return n, nil
}

// queryBool reads an optional flag: 1/true or 0/false, absent is false.
func queryBool(c *fiber.Ctx, name string) (bool, error) {
	switch c.Query(name) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, model.Errorf(model.CodeInvalidQuery, "Query parameter %s must be 1 or 0 (true or false).", name)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// pathID reads the :id route parameter as a download id.
func pathID(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, model.Errorf(model.CodeNotFound, "There is no download %q.", c.Params("id"))
	}
	return id, nil
}

func slogLevelFor(path string, status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case path == "/api/health":
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
