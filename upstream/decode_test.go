package upstream

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeBodyMatchesStd pins decodeBody to encoding/json: every page of
// the sandbox's dataset, and the awkward inputs a gateway might send, decode
// to the same value, and what encoding/json refuses is refused.
func TestDecodeBodyMatchesStd(t *testing.T) {
	raw, err := os.ReadFile("sandbox/data/images.json")
	require.NoError(t, err)
	var groups []ImageGroup
	require.NoError(t, json.Unmarshal(raw, &groups))
	require.NotEmpty(t, groups)

	var bodies [][]byte
	for off := 0; off < len(groups); off += 20 {
		page := DescribeCommunityImagesResponse{
			Action: "DescribeCommunityImagesResponse", TotalCount: len(groups), AvailableTotalCount: 1,
			CompshareImageGroup: groups[off:min(off+20, len(groups))],
		}
		b, err := json.Marshal(page)
		require.NoError(t, err)
		bodies = append(bodies, b)
	}
	all, err := json.Marshal(DescribeCommunityImagesResponse{CompshareImageGroup: groups})
	require.NoError(t, err)
	bodies = append(bodies, all)

	for _, s := range []string{
		`{"RetCode":"171","Message":"bad signature"}`,
		`{"RetCode":" 230 "}`,
		`{"RetCode":null,"TotalCount":2}`,
		`{"retcode":0,"totalcount":3,"compshareimagegroup":[{"groupid":"g"}]}`,
		`{"RetCode":0,"CompshareImageGroup":null,"ImageSet":[]}`,
		`{"RetCode":0,"Unknown":{"a":[1,2.5e3,{"b":null}],"c":"d"},"TotalCount":1}`,
		`{"CompshareImageGroup":[{"GroupId":"g","Data":[{"Name":"\u4e2d\u6587 \ud83d\ude00 \ud800 <b>&amp;</b>","Tags":["a",null,"\u00e9"],"Price":1e-2,"Size":9007199254740993}]}]}`,
		"{\"CompshareImageGroup\":[{\"GroupId\":\"g\",\"ImageName\":\"ok \xff\xfe bytes\"}]}",
		`{"TotalCount":1,"TotalCount":2}`,
		`{"CompshareImageGroup":[{"GroupId":"a"}],"CompshareImageGroup":[{"GroupId":"b"},{"GroupId":"c"}]}`,
		`null`,
		`  {"TotalCount": 4}  `,
		// Refused by encoding/json, so refused here too.
		`{"TotalCount":1.5}`,
		`{"TotalCount":"3"}`,
		`{"TotalCount":99999999999999999999}`,
		`{"RetCode":"x"}`,
		`{"CompshareImageGroup":[{"Data":[{"AutoStart":"true"}]}]}`,
		"{\"Message\":\"control \x01 char\"}",
		`{"RetCode":0,"CompshareImageGroup":[{`,
		`{"RetCode":0} trailing`,
		`[]`,
		``,
	} {
		bodies = append(bodies, []byte(s))
	}

	for _, b := range bodies {
		var want, got DescribeCommunityImagesResponse
		wantErr := json.Unmarshal(b, &want)
		gotErr := decodeBody(b, &got)
		name := string(b[:min(len(b), 80)])
		if wantErr != nil {
			require.Error(t, gotErr, "encoding/json refuses %q: %v", name, wantErr)
			continue
		}
		require.NoError(t, gotErr, name)
		require.Equal(t, want, got, name)
	}
}

// TestDecodeBodyCopiesStrings: the body is read into a pooled buffer that
// the next call reuses, so decoded strings must not point into it.
func TestDecodeBodyCopiesStrings(t *testing.T) {
	body := []byte(`{"Message":"hello","CompshareImageGroup":[{"GroupId":"group-1","Data":[{"Name":"v1"}]}]}`)
	var out DescribeCommunityImagesResponse
	require.NoError(t, decodeBody(body, &out))
	for i := range body {
		body[i] = 'x'
	}
	require.Equal(t, "hello", out.Message)
	require.Equal(t, "group-1", out.CompshareImageGroup[0].GroupId)
	require.Equal(t, "v1", out.CompshareImageGroup[0].Data[0].Name)
}
