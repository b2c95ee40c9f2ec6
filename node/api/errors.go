package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answered to a client. The OpenAI routes write it as
// {"error":{"message","type","param","code"}}, the TGI routes as
// {"error","error_type"}.
type apiError struct {
	status  int
	message string
	param   string // the request field at fault, or ""
	code    string // OpenAI's machine-readable code, or ""
	typ     string // OpenAI's error type; derived from status when ""
	tgiType string // TGI's error_type; derived from status when ""
	retry   time.Duration
}

func (e *apiError) Error() string { return e.message }

// badRequest is a 400 about param.
func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, param: param, message: fmt.Sprintf(format, args...)}
}

// openAIType is OpenAI's error type for e.
func (e *apiError) openAIType() string {
	if e.typ != "" {
		return e.typ
	}
	switch {
	case e.status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case e.status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// tgiErrorType is TGI's error_type for e.
func (e *apiError) tgiErrorType() string {
	if e.tgiType != "" {
		return e.tgiType
	}
	switch e.status {
	case http.StatusTooManyRequests:
		return "overloaded"
	case http.StatusServiceUnavailable:
		return "loading"
	case http.StatusUnauthorized:
		return "authentication"
	}
	if e.status >= 500 {
		return "generation"
	}
	return "validation"
}

// openAIError is the wire shape of an OpenAI error.
type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) openAI() openAIError {
	b := openAIErrorBody{Message: e.message, Type: e.openAIType()}
	if e.param != "" {
		b.Param = &e.param
	}
	if e.code != "" {
		b.Code = &e.code
	}
	return openAIError{Error: b}
}

// tgiError is the wire shape of a TGI error.
type tgiError struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type"`
}

func (e *apiError) tgi() tgiError {
	return tgiError{Error: e.message, ErrorType: e.tgiErrorType()}
}

// writeHeaders sets Retry-After for 429 and 503.
func (e *apiError) writeHeaders(w http.ResponseWriter) {
	if e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable {
		secs := int(math.Ceil(e.retry.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
	}
}

func writeOpenAIError(w http.ResponseWriter, e *apiError) {
	e.writeHeaders(w)
	writeJSON(w, e.status, e.openAI())
}

func writeTGIError(w http.ResponseWriter, e *apiError) {
	e.writeHeaders(w)
	writeJSON(w, e.status, e.tgi())
}

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"internal error encoding the response","type":"server_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decodeError explains a request body that does not decode into the
// request type: bad JSON, a wrong type, or a value out of range for it.
func decodeError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var fe *fieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.As(err, &fe):
		return badRequest(fe.field, "invalid value for '%s': %s", fe.field, fe.msg)
	case errors.As(err, &typ):
		field := strings.TrimPrefix(typ.Field, "samplingFields.") // an embedded struct's name is no part of the wire
		if field == "" {
			return badRequest("", "the request body must be a JSON object, not %s", jsonKind(typ.Value))
		}
		want := typ.Type.Kind().String()
		switch want {
		case "int", "int64", "int32", "uint64":
			want = "an integer"
		case "float64", "float32":
			want = "a number"
		case "bool":
			want = "a boolean"
		case "string":
			want = "a string"
		case "slice":
			want = "an array"
		case "struct", "map":
			want = "an object"
		}
		if typ.Value == "number" && (want == "an integer") {
			return badRequest(field, "invalid type for '%s': expected an integer, got a number that is not one (or out of range)", field)
		}
		return badRequest(field, "invalid type for '%s': expected %s, got %s", field, want, jsonKind(typ.Value))
	case errors.As(err, &syn):
		return badRequest("", "the request body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
	case errors.Is(err, errEmptyBody):
		return badRequest("", "the request body is empty; send a JSON object")
	}
	return badRequest("", "the request body is not valid JSON: %v", err)
}

// jsonKind names a JSON value kind as json.UnmarshalTypeError reports it.
func jsonKind(v string) string {
	switch v {
	case "number", "string", "bool", "array", "object":
		if v == "bool" {
			return "a boolean"
		}
		if v == "array" || v == "object" {
			return "an " + v
		}
		return "a " + v
	}
	if v == "" {
		return "null"
	}
	return v
}

// fieldError is returned by the custom decoders of polymorphic fields.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

var errEmptyBody = errors.New("empty body")

// fmtf is fmt.Sprintf.
func fmtf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
