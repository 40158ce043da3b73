// Package settings holds the user's settings: the theme, the activity
// retention, browser notifications and the tokens of the model hosts
// (HuggingFace, Civitai). It validates changes, checks a token with its
// service before saving it, keeps tokens out of everything that leaves the
// server, and announces every change so all open tabs follow.
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"dashboard/model"
)

// Store is the part of the database settings need.
type Store interface {
	Settings(ctx context.Context) (map[string]string, error)
	SetSettings(ctx context.Context, kv map[string]string) error
	DeleteSetting(ctx context.Context, key string) error
}

// Publisher sends an event to every live client.
type Publisher interface {
	Publish(typ string, data any)
}

// View is the Settings object of the API. It never holds a full token.
type View struct {
	Theme                 string `json:"theme"`
	ActivityRetentionDays int    `json:"activity_retention_days"`
	// Notifications: the browser shows a notification when a download ends
	// or a generation ends while the dashboard's tab is hidden.
	Notifications bool      `json:"notifications"`
	HFToken       TokenView `json:"hf_token"`
	CivitaiToken  TokenView `json:"civitai_token"`
}

// TokenView describes the token in use without revealing it.
type TokenView struct {
	Set      bool    `json:"set"`
	Source   *string `json:"source"`
	Masked   *string `json:"masked"`
	Username *string `json:"username"`
}

// TokenCheck is the answer of a token test.
type TokenCheck struct {
	Valid    bool   `json:"valid"`
	Username string `json:"username,omitempty"`
	Role     string `json:"role,omitempty"`
	Message  string `json:"message,omitempty"`
}

// Patch is a change of the plain settings; nil fields stay as they are.
type Patch struct {
	Theme         *string
	RetentionDays *int
	Notifications *bool
}

// TokenKind names the service a token belongs to.
type TokenKind string

// The services the dashboard keeps a token for.
const (
	HuggingFace TokenKind = "huggingface"
	Civitai     TokenKind = "civitai"
)

// Default endpoints, used when the Config leaves them empty.
const (
	DefaultHFEndpoint      = "https://huggingface.co"
	DefaultCivitaiEndpoint = "https://civitai.com"
)

// Config wires a Service.
type Config struct {
	Store      Store
	Publisher  Publisher
	Logger     *slog.Logger
	EnvToken   string // HF_TOKEN, used when no HuggingFace token is saved
	HFEndpoint string // base URL, e.g. https://huggingface.co
	// CivitaiEnvToken is CIVITAI_TOKEN, used when no Civitai token is saved.
	CivitaiEnvToken string
	CivitaiEndpoint string // base URL, e.g. https://civitai.com
	HTTPClient      *http.Client
}

// Service reads and changes settings.
type Service struct {
	cfg    Config
	client *http.Client // never follows redirects
	tokens map[TokenKind]*tokenService
}

// tokenService is what differs between the services a token is kept for:
// where it is stored, where it comes from when none is saved, where and how
// it is checked, and how that service's answers read. Everything else
// (saving only what the service accepted, masking, the env fallback, never
// following a redirect with a token) is the same code for all of them.
type tokenService struct {
	name        string // as sentences name the service
	key         string // setting holding the token
	userKey     string // setting holding the username the service gave
	envName     string // the fallback variable, as messages name it
	envToken    string
	endpoint    string // base URL without a trailing slash
	shown       string // the endpoint as logs and messages may show it
	endpointVar string // the variable naming the endpoint, for messages
	check       string // path answered 200 with the account for a good token
	// refused are the statuses that mean the service does not accept the token.
	refused     []int
	unreachable model.Code
	looksLike   string // what a token is, for the message about an empty one
	// account reads a 200 answer of check; ok is false when it names nobody.
	account func(body io.Reader) (check TokenCheck, ok bool)

	// envUser caches the username of the env fallback once a test has
	// shown it; it is not stored because the env token is not ours.
	mu      sync.Mutex
	envUser string
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.HFEndpoint == "" {
		cfg.HFEndpoint = DefaultHFEndpoint
	}
	if cfg.CivitaiEndpoint == "" {
		cfg.CivitaiEndpoint = DefaultCivitaiEndpoint
	}
	// The token check never follows a redirect: Go's client would carry the
	// Authorization header to another port of the same host, from https to
	// http, or to a subdomain. Both checks answer directly; a redirect means
	// a misconfigured endpoint, and the token stays where it was sent.
	noFollow := *cfg.HTTPClient
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &Service{cfg: cfg, client: &noFollow}
	s.tokens = map[TokenKind]*tokenService{
		HuggingFace: {
			name: "HuggingFace", key: model.SettingHFToken, userKey: model.SettingHFUsername,
			envName: "HF_TOKEN", envToken: cfg.EnvToken, endpointVar: "HF_ENDPOINT",
			endpoint: cfg.HFEndpoint, check: "/api/whoami-v2",
			refused: []int{http.StatusUnauthorized}, unreachable: model.CodeHFUnreachable,
			looksLike: "a HuggingFace access token (it starts with hf_)",
			account:   hfAccount,
		},
		Civitai: {
			name: "Civitai", key: model.SettingCivitaiToken, userKey: model.SettingCivitaiUsername,
			envName: "CIVITAI_TOKEN", envToken: cfg.CivitaiEnvToken, endpointVar: "CIVITAI_ENDPOINT",
			endpoint: cfg.CivitaiEndpoint, check: "/api/v1/me",
			// Civitai answers 401 for a missing, malformed or revoked key;
			// a 403 is a key it knows but will not let in.
			refused: []int{http.StatusUnauthorized, http.StatusForbidden}, unreachable: model.CodeCivitaiUnreachable,
			looksLike: "a Civitai API key (create one at civitai.com/user/account)",
			account:   civitaiAccount,
		},
	}
	for _, ts := range s.tokens {
		ts.endpoint = strings.TrimRight(ts.endpoint, "/")
		ts.shown = ts.endpoint
		if u, err := url.Parse(ts.endpoint); err == nil {
			ts.shown = u.Redacted() // a mirror's user:password stays out of messages
		}
	}
	return s
}

// Token returns the HuggingFace token downloads should use: the saved one,
// else HF_TOKEN, else "".
func (s *Service) Token(ctx context.Context) string { return s.token(ctx, s.tokens[HuggingFace]) }

// CivitaiToken returns the Civitai token downloads should use: the saved
// one, else CIVITAI_TOKEN, else "".
func (s *Service) CivitaiToken(ctx context.Context) string { return s.token(ctx, s.tokens[Civitai]) }

func (s *Service) token(ctx context.Context, ts *tokenService) string {
	kv, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		s.cfg.Logger.Warn("read token setting failed; using the environment's fallback", "service", ts.name, "env", ts.envName, "err", err)
		return ts.envToken
	}
	if t := kv[ts.key]; t != "" {
		return t
	}
	return ts.envToken
}

// RetentionDays returns the activity retention in days.
func (s *Service) RetentionDays(ctx context.Context) (int, error) {
	kv, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		return 0, fmt.Errorf("read retention: %w", err)
	}
	return retention(kv), nil
}

func retention(kv map[string]string) int {
	n, err := strconv.Atoi(kv[model.SettingRetentionDays])
	if err != nil || !model.ValidRetentionDays(n) {
		return model.DefaultRetentionDays
	}
	return n
}

// View returns the current settings.
func (s *Service) View(ctx context.Context) (View, error) {
	kv, err := s.cfg.Store.Settings(ctx)
	if err != nil {
		return View{}, fmt.Errorf("read settings: %w", err)
	}
	v := View{Theme: kv[model.SettingTheme], ActivityRetentionDays: retention(kv), Notifications: model.DefaultNotifications}
	if n, err := strconv.ParseBool(kv[model.SettingNotifications]); err == nil {
		v.Notifications = n
	}
	if !model.ValidTheme(v.Theme) {
		v.Theme = model.DefaultTheme
	}
	v.HFToken = s.tokens[HuggingFace].view(kv)
	v.CivitaiToken = s.tokens[Civitai].view(kv)
	return v, nil
}

// view describes the token in use: the saved one, else the env fallback.
func (ts *tokenService) view(kv map[string]string) TokenView {
	token, source, user := kv[ts.key], "db", kv[ts.userKey]
	if token == "" && ts.envToken != "" {
		token, source = ts.envToken, "env"
		ts.mu.Lock()
		user = ts.envUser
		ts.mu.Unlock()
	}
	if token == "" {
		return TokenView{}
	}
	m := Mask(token)
	v := TokenView{Set: true, Source: &source, Masked: &m}
	if user != "" {
		v.Username = &user
	}
	return v
}

// Update applies p after checking every field; nothing is written when one is bad.
func (s *Service) Update(ctx context.Context, p Patch) (View, error) {
	kv := map[string]string{}
	if p.Theme != nil {
		if !model.ValidTheme(*p.Theme) {
			return View{}, model.Errorf(model.CodeInvalidSetting, "The theme must be %q or %q, not %q.", model.ThemeDark, model.ThemeLight, *p.Theme)
		}
		kv[model.SettingTheme] = *p.Theme
	}
	if p.RetentionDays != nil {
		d := *p.RetentionDays
		if !model.ValidRetentionDays(d) {
			return View{}, model.Errorf(model.CodeInvalidSetting, "activity_retention_days must be between %d and %d, not %d.", model.MinRetentionDays, model.MaxRetentionDays, d)
		}
		kv[model.SettingRetentionDays] = strconv.Itoa(d)
	}
	if p.Notifications != nil {
		kv[model.SettingNotifications] = strconv.FormatBool(*p.Notifications)
	}
	if len(kv) == 0 {
		return View{}, model.Errorf(model.CodeInvalidSetting, "Nothing to change: send theme, activity_retention_days or notifications.")
	}
	if err := s.cfg.Store.SetSettings(ctx, kv); err != nil {
		return View{}, fmt.Errorf("save settings: %w", err)
	}
	return s.changed(ctx)
}

func (s *Service) service(kind TokenKind) (*tokenService, error) {
	ts, ok := s.tokens[kind]
	if !ok {
		return nil, fmt.Errorf("settings: no token kind %q", kind) // a fault of ours
	}
	return ts, nil
}

// SaveToken checks token with its service and saves it only when the
// service accepts it.
func (s *Service) SaveToken(ctx context.Context, kind TokenKind, token string) (View, error) {
	ts, err := s.service(kind)
	if err != nil {
		return View{}, err
	}
	token, err = ts.clean(token)
	if err != nil {
		return View{}, err
	}
	check, err := s.ask(ctx, ts, token)
	if err != nil {
		return View{}, err
	}
	if !check.Valid {
		return View{}, &model.Error{Code: model.CodeInvalidToken, Message: check.Message}
	}
	if err := s.cfg.Store.SetSettings(ctx, map[string]string{ts.key: token, ts.userKey: check.Username}); err != nil {
		return View{}, fmt.Errorf("save token: %w", err)
	}
	s.cfg.Logger.Info("token saved", "service", ts.name, "username", check.Username)
	return s.changed(ctx)
}

// TestToken checks token, or the token in use when token is "".
func (s *Service) TestToken(ctx context.Context, kind TokenKind, token string) (TokenCheck, error) {
	ts, err := s.service(kind)
	if err != nil {
		return TokenCheck{}, err
	}
	usingCurrent := strings.TrimSpace(token) == ""
	if usingCurrent {
		token = s.token(ctx, ts)
		if token == "" {
			return TokenCheck{Valid: false, Message: fmt.Sprintf("No %s token is set. Paste one to test it.", ts.name)}, nil
		}
	} else if token, err = ts.clean(token); err != nil {
		return TokenCheck{Valid: false, Message: err.Error()}, nil
	}
	check, err := s.ask(ctx, ts, token)
	if err != nil {
		return TokenCheck{}, err
	}
	if usingCurrent && check.Valid && token == ts.envToken {
		ts.mu.Lock()
		ts.envUser = check.Username
		ts.mu.Unlock()
	}
	return check, nil
}

// DeleteToken forgets the saved token; the env fallback may still apply.
func (s *Service) DeleteToken(ctx context.Context, kind TokenKind) (View, error) {
	ts, err := s.service(kind)
	if err != nil {
		return View{}, err
	}
	for _, k := range []string{ts.key, ts.userKey} {
		if err := s.cfg.Store.DeleteSetting(ctx, k); err != nil {
			return View{}, fmt.Errorf("delete token: %w", err)
		}
	}
	s.cfg.Logger.Info("token removed", "service", ts.name)
	return s.changed(ctx)
}

func (s *Service) changed(ctx context.Context) (View, error) {
	v, err := s.View(ctx)
	if err != nil {
		return View{}, err
	}
	s.cfg.Publisher.Publish(model.FrameSettings, v)
	return v, nil
}

// Mask shows enough of a token to recognise it: "hf_…wxyz".
func Mask(token string) string {
	if len(token) < 12 {
		return "…"
	}
	return token[:3] + "…" + token[len(token)-4:]
}

// clean trims token and refuses what cannot be a token, with a
// model.CodeInvalidToken error.
func (ts *tokenService) clean(token string) (string, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return "", model.Errorf(model.CodeInvalidToken, "The token is empty: paste %s.", ts.looksLike)
	}
	if len(token) > 256 {
		return "", model.Errorf(model.CodeInvalidToken, "That is too long to be a %s token.", ts.name)
	}
	for _, r := range token {
		if r <= ' ' || r > '~' {
			return "", model.Errorf(model.CodeInvalidToken, "A %s token has no spaces or special characters: check what was pasted.", ts.name)
		}
	}
	return token, nil
}

// ask asks the service who token belongs to. A refusal is an invalid token;
// no answer, a redirect, or any other status is the service's unreachable
// error.
func (s *Service) ask(ctx context.Context, ts *tokenService, token string) (TokenCheck, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.endpoint+ts.check, nil)
	if err != nil {
		return TokenCheck{}, ts.unreachableError(fmt.Sprintf("the %s endpoint is not a valid URL", ts.name))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		// The error names only the URL, never the header, but keep it short.
		s.cfg.Logger.Warn("token check failed", "service", ts.name, "endpoint", ts.shown, "err", errors.Unwrap(err))
		return TokenCheck{}, ts.unreachableError("no answer from " + ts.shown)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		s.cfg.Logger.Warn("token check answered with a redirect; not followed", "service", ts.name, "status", resp.StatusCode, "endpoint", ts.shown)
		return TokenCheck{}, ts.unreachableError(fmt.Sprintf("%s answered with a redirect (HTTP %d), which is not followed with a token; check %s", ts.shown, resp.StatusCode, ts.endpointVar))
	case ts.refuses(resp.StatusCode):
		return TokenCheck{Valid: false, Message: fmt.Sprintf("%s does not accept this token: it is wrong, expired or revoked.", ts.name)}, nil
	case resp.StatusCode != http.StatusOK:
		s.cfg.Logger.Warn("token check answered an error", "service", ts.name, "status", resp.StatusCode)
		return TokenCheck{}, ts.unreachableError(fmt.Sprintf("%s answered HTTP %d", ts.name, resp.StatusCode))
	}
	check, ok := ts.account(http.MaxBytesReader(nil, resp.Body, 1<<20))
	if !ok {
		return TokenCheck{}, ts.unreachableError(ts.name + " sent an answer that could not be read")
	}
	check.Valid = true
	return check, nil
}

func (ts *tokenService) refuses(status int) bool {
	for _, r := range ts.refused {
		if status == r {
			return true
		}
	}
	return false
}

// unreachableError says the service could not be asked about a token, and why.
func (ts *tokenService) unreachableError(why string) *model.Error {
	return model.Errorf(ts.unreachable, "Could not reach %s to check the token (%s). Nothing was saved; try again in a moment.", ts.name, why)
}

// hfAccount reads HuggingFace's whoami-v2.
func hfAccount(body io.Reader) (TokenCheck, bool) {
	var who struct {
		Name string `json:"name"`
		Auth struct {
			AccessToken struct {
				Role string `json:"role"`
			} `json:"accessToken"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(body).Decode(&who); err != nil || who.Name == "" {
		return TokenCheck{}, false
	}
	return TokenCheck{Username: who.Name, Role: who.Auth.AccessToken.Role}, true
}

// civitaiAccount reads Civitai's /api/v1/me. Civitai's keys have no role;
// the membership tier is not the token's business.
func civitaiAccount(body io.Reader) (TokenCheck, bool) {
	var me struct {
		Username string `json:"username"`
	}
	if err := json.NewDecoder(body).Decode(&me); err != nil || me.Username == "" {
		return TokenCheck{}, false
	}
	return TokenCheck{Username: me.Username}, true
}
