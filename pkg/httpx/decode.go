package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// BadRequest is a request body the handler cannot accept. Field names the
// offending JSON field ("" when the body as a whole is wrong). Answer it with
// Error(c, 400, "invalid_request", err.Error()), or 413 when TooLarge.
type BadRequest struct {
	Field    string
	Message  string
	TooLarge bool
}

func (e *BadRequest) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// DecodeJSON decodes exactly one JSON value from the request body into dst,
// rejecting unknown fields. Every failure is a *BadRequest.
func DecodeJSON(c *gin.Context, dst any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badRequest(err)
		}
		return &BadRequest{Message: "body must hold a single JSON value"}
	}
	return nil
}

func badRequest(err error) *BadRequest {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return &BadRequest{Message: "body is empty"}
	case errors.As(err, &maxErr):
		return &BadRequest{Message: "body larger than 1 MiB", TooLarge: true}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &BadRequest{Message: "malformed JSON"}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		return &BadRequest{Field: field, Message: fmt.Sprintf("must be %s", jsonKind(typeErr.Type.Kind().String()))}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &BadRequest{Field: name, Message: "unknown field"}
	default:
		return &BadRequest{Message: "invalid JSON: " + err.Error()}
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	default:
		return "an object"
	}
}
