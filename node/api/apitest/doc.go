// Package apitest provides in-memory fakes of node/api's interfaces, for
// tests of the API and of whatever serves it: a scripted Generator, a
// byte-level Tokenizer with a real chat template, and a Pipeline.
//
// Imports: the standard library, node/api, pipeline/sample and
// pipeline/tokenizer.
package apitest
