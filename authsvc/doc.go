// Package authsvc is Plex's auth service: a nats.go/micro service that
// answers bus.SubjectAuth in queue group bus.QueueAuth and decides, through a
// pluggable Verifier, which uid a connecting client is.
//
// The flow of one login:
//
//	client ──/auth/server body──▶ edge ──plex.auth {"body","remote","edge","conn"}──▶ authsvc
//	                                                                                 │ parse (bad JSON: micro error 400)
//	                                                                                 │ wait for a pool slot (MaxConcurrent)
//	                                                                                 │ Verifier.Verify under VerifyTimeout
//	client ◀──/auth/success or /auth/failed── edge ◀──{"ok","uid","reason"}──────────┘
//
// A refusal is an ordinary reply with ok=false and a short reason the client
// is shown; a Verifier refuses by returning Refuse(reason). Any other error
// is logged and the client sees a generic reason ("auth error", "auth
// unavailable", "auth timeout"), so internals never reach a device. An ok
// reply always carries a uid that passes bus.ValidUID.
//
// Verifiers shipped here: Dev (the body is the uid; insecure, development
// only), JWT (HS256, RS256, ES256) and Webhook (ask the business's HTTP
// endpoint). A business serves its own logic with VerifierFunc or SimpleFunc
// in a few lines; see the package example.
package authsvc
