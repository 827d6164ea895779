package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/plexbus/plex/bus"
)

// apiDo calls the HTTP API with the bearer password and decodes a JSON
// answer into out; an error status becomes an error with the API's message.
func apiDo(ctx context.Context, tf toolFlags, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(tf.api, "/")+path, body)
	if err != nil {
		return usageErr("--api %q: %v", tf.api, err)
	}
	if tf.password != "" {
		req.Header.Set("Authorization", "Bearer "+tf.password)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("call the API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("API %s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("API %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("API answer is not JSON: %w", err)
		}
	}
	return nil
}

func apiPush(ctx context.Context, tf toolFlags, uids []string, uri string, seq int64, body []byte, wait bool) (int, error) {
	req := map[string]any{"body": string(body)}
	if len(uids) == 1 {
		req["uid"] = uids[0]
	} else {
		req["uids"] = uids
	}
	if uri != "" {
		req["uri"] = uri
	}
	if seq != 0 {
		req["seq"] = seq
	}
	path := "/plex/v1/push"
	if wait {
		path += "?wait=1"
	}
	var out struct {
		Delivered int `json:"delivered"`
	}
	if err := apiDo(ctx, tf, http.MethodPost, path, req, &out); err != nil {
		return 0, err
	}
	return out.Delivered, nil
}

func apiOnline(ctx context.Context, tf toolFlags, uid string) ([]bus.ConnInfo, error) {
	var out struct {
		Online bool           `json:"online"`
		Conns  []bus.ConnInfo `json:"conns"`
	}
	if err := apiDo(ctx, tf, http.MethodGet, "/plex/v1/online/"+url.PathEscape(uid), nil, &out); err != nil {
		return nil, err
	}
	return out.Conns, nil
}
