package transport

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
)

func TestErrorTable(t *testing.T) {
	require.LessOrEqual(t, len(errorTable), maxErrorCodes)
	for i, e := range errorTable {
		require.NotZero(t, e.code, "code 0 means no error")
		require.NotNil(t, e.err)
		if i > 0 {
			require.Greater(t, e.code, errorTable[i-1].code, "the table is sorted by code, each code once")
		}
		for j, f := range errorTable {
			if i != j {
				assert.False(t, errors.Is(e.err, f.err), "%q matches %q: one error would travel as two codes", e.err, f.err)
			}
		}
		// Every entry survives a round trip as itself, bare and wrapped.
		for _, err := range []error{e.err, errors.Join(errors.New("detail"), e.err)} {
			resp, derr := DecodeResponse(AppendResponse(nil, &Response{Err: err}))
			require.NoError(t, derr)
			require.ErrorIs(t, resp.Err, e.err)
			require.Equal(t, err.Error(), resp.Err.Error())
		}
	}
	assert.Same(t, storage.ErrSealed, errorByCode(codeSealed))
	assert.Same(t, ErrRemote, errorByCode(codeRemote))
	assert.Nil(t, errorByCode(0))
	assert.Nil(t, errorByCode(1000))
}
