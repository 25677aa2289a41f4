package upstream

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeBody decodes arbitrary bodies with the client's decoder (sonic)
// and with encoding/json, the reference it must match. It proves that
// decodeBody and DecodeResponse never panic; that each refuses exactly what
// encoding/json refuses; and that what they accept decodes to what
// encoding/json decodes (DecodeResponse after the same Normalize). Seeds:
// a page of the sandbox, TestDecodeBodyMatchesStd's awkward bodies, and the
// classes where sonic and encoding/json have been seen to differ.
func FuzzDecodeBody(f *testing.F) {
	page, err := os.ReadFile("sandbox/data/images.json")
	require.NoError(f, err)
	var groups []ImageGroup
	require.NoError(f, json.Unmarshal(page, &groups))
	first, err := json.Marshal(DescribeCommunityImagesResponse{Action: "DescribeCommunityImagesResponse", TotalCount: len(groups), CompshareImageGroup: groups[:2]})
	require.NoError(f, err)
	f.Add(first)
	for _, s := range []string{
		`{"RetCode":"171","Message":"bad signature"}`,
		`{"retcode":0,"totalcount":3,"compshareimagegroup":[{"groupid":"g"}]}`,
		`{"RetCode":0,"Unknown":{"a":[1,2.5e3,{"b":null}],"c":"d"},"TotalCount":1}`,
		`{"CompshareImageGroup":[{"GroupId":"g","Data":[{"Name":"\u4e2d\u6587 \ud83d\ude00 \ud800 <b>&amp;</b>","Tags":["a",null,"\u00e9"],"Price":1e-2,"Size":9007199254740993}]}]}`,
		"{\"CompshareImageGroup\":[{\"GroupId\":\"g\",\"ImageName\":\"ok \xff\xfe bytes\"}]}",
		`{"TotalCount":1,"TotalCount":2}`,
		`{"ImageSet":[{"CompShareImageId":"i1","GroupId":"g","Status":"Available"},{"CompShareImageId":"i2"}]}`,
		`{"TotalCount":1.5}`, `{"TotalCount":"3"}`, `{"TotalCount":99999999999999999999}`, `{"TotalCount":-0}`, `{"TotalCount":1e2}`,
		`{"RetCode":"x"}`, `{"RetCode":" 12 "}`, `{"RetCode":[1]}`, `{"RetCode":1.0}`,
		`{"CompshareImageGroup":[{"Data":[{"AutoStart":"true","Price":1e400}]}]}`,
		"{\"Message\":\"control \x01 char\"}",
		"{\"Unknown\":\"control \x01 char\"}",
		"{\"\xff\":1,\"Mess\xc3ge\":\"x\"}",
		"{\"ſtatus\":1,\"TotalCount\":2,\"ToTalCount\":3}",
		"{\"CompshareImageGroup\":[{\"ſtatus\":\"x\",\"K\":1}]}",
		`{"Unknown":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
		`{"RetCode":0,"CompshareImageGroup":[{`, `{"RetCode":0} trailing`, `[]`, ``, `null`, ` {"TotalCount": 4} `,
		`{"Message":"\u0000"}`, `{"Message":"\/"}`, `{"Message":"\x"}`, "{\"Message\":\"a\tb\"}",
		// Invalid escapes in values no field takes, with enough body after
		// them that sonic skips them unchecked.
		`{"Unknown":"\0` + strings.Repeat("a", 40) + `"}`,
		`{"Unknown":["\u00zz","` + strings.Repeat("a", 40) + `"]}`,
		`{"CompshareImageGroup":[{"Data":[{"Unknown":"\x","Name":"` + strings.Repeat("b", 40) + `"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var want DescribeCommunityImagesResponse
		wantErr := json.Unmarshal(body, &want)

		var got DescribeCommunityImagesResponse
		gotErr := decodeBody(body, &got)
		if wantErr != nil {
			require.Error(t, gotErr, "encoding/json refuses it (%v); decodeBody decoded %+v", wantErr, got)
		} else {
			require.NoError(t, gotErr, "encoding/json decodes it to %+v", want)
			assert.Equal(t, want, got)
		}

		resp, err := DecodeResponse(bytes.Clone(body))
		if wantErr != nil {
			require.Error(t, err, "encoding/json refuses it (%v); DecodeResponse decoded %+v", wantErr, resp)
			return
		}
		require.NoError(t, err)
		want.Normalize()
		assert.Equal(t, &want, resp)
	})
}
