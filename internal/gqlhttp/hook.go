package gqlhttp

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// AnswerHook is told of each answer of an executed operation before the
// transport writes it, with the operation's context (its limits, its
// upstream usage): the seam through which a cache of whole answers sees
// what it may keep.
type AnswerHook func(ctx context.Context, resp *graphql.Response)

type answerHookKey struct{}

// WithAnswerHook returns ctx whose executed answers are told to hook.
func WithAnswerHook(ctx context.Context, hook AnswerHook) context.Context {
	return context.WithValue(ctx, answerHookKey{}, hook)
}

// AnswerHookFrom returns the hook of ctx, or nil.
func AnswerHookFrom(ctx context.Context) AnswerHook {
	h, _ := ctx.Value(answerHookKey{}).(AnswerHook)
	return h
}
