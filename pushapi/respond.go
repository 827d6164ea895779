package pushapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v as the answer. Answers are never cached: host
// hand-outs and counts change from one request to the next.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(`{"error":"internal error: encoding the answer"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n')) // a failed write is the client's hang-up
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// decimal is a number of seconds or a ratio written with a decimal point
// ("1.0", "0.3"), as the SDKs' examples show it.
type decimal float64

func (d decimal) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(d), 'f', -1, 64)
	if !strings.ContainsAny(string(b), ".eE") {
		b = append(b, ".0"...)
	}
	return b, nil
}
