// Package testdata finds the shared test data (models, llama.cpp reference
// outputs, tokenizer vectors) that lives beside the repository, never in it.
//
// Tests call Path. The folder is $STRATA_TESTDATA, or ../shared/testdata
// next to the module root. When a file is missing the test is skipped with a
// message, except under CI=true, where a missing file fails the test.
//
// It imports only the standard library and may be imported by any test.
package testdata
