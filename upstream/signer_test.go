package upstream

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	vectorPublicKey  = "ucloudsomeone@example.com1296235120854146120"
	vectorPrivateKey = "46f09bb9fab4f12dfc160dae12273d5332b5debe"
)

// TestSignVectors pins the signer to the four vectors of UPSTREAM.md, the
// string to sign as well as the signature.
func TestSignVectors(t *testing.T) {
	t.Parallel()
	tags := make([]string, 11)
	for i := range tags {
		tags[i] = "t" + string(rune('0'+i%10))
	}
	tags[10] = "t10"
	cases := []struct {
		name         string
		in           map[string]any
		stringToSign string
		signature    string
	}{
		{
			name: "A documented example",
			in: map[string]any{
				"Action": "CreateUHostInstance", "CPU": 2, "ChargeType": "Month", "DiskSpace": 10,
				"ImageId": "f43736e1-65a5-4bea-ad2e-8a46e18883c2", "LoginMode": "Password",
				"Memory": 2048, "Name": "Host01", "Password": "VUNsb3VkLmNu", "Quantity": 1,
				"Region": "cn-bj2", "Zone": "cn-bj2-04",
			},
			stringToSign: "ActionCreateUHostInstanceCPU2ChargeTypeMonthDiskSpace10ImageIdf43736e1-65a5-4bea-ad2e-8a46e18883c2LoginModePasswordMemory2048NameHost01PasswordVUNsb3VkLmNuPublicKeyucloudsomeone@example.com1296235120854146120Quantity1Regioncn-bj2Zonecn-bj2-0446f09bb9fab4f12dfc160dae12273d5332b5debe",
			signature:    "4f9ef5df2abab2c6fccd1e9515cb7e2df8c6bb65",
		},
		{
			name:         "B minimal DescribeCommunityImages",
			in:           map[string]any{"Action": "DescribeCommunityImages", "Region": "cn-wlcb"},
			stringToSign: "ActionDescribeCommunityImagesPublicKey" + vectorPublicKey + "Regioncn-wlcb" + vectorPrivateKey,
			signature:    "1e3ab92d2c6dfa70951b29cf79d83ace5ef59906",
		},
		{
			name: "C paging, sort and a tag",
			in: map[string]any{
				"Action": "DescribeCommunityImages", "Region": "cn-wlcb", "Limit": 20,
				"Name": "stable diffusion", "Offset": 0, "Tag": "AIGC",
				"SortCondition": map[string]any{"ASC": false, "Field": "PubTime"},
			},
			stringToSign: "ActionDescribeCommunityImagesLimit20Namestable diffusionOffset0PublicKey" + vectorPublicKey +
				"Regioncn-wlcbSortCondition.ASCfalseSortCondition.FieldPubTimeTagAIGC" + vectorPrivateKey,
			signature: "a7fd5f17b45057b4ec506f5d103fb049497055fb",
		},
		{
			name: "D arrays, booleans, floats and byte order",
			in: map[string]any{
				"Action": "Test", "Region": "cn-wlcb", "Tag": tags,
				"SortCondition": map[string]any{"Field": "PubTime", "ASC": true},
				"Price":         1.50, "Whole": 42.0, "Empty": "",
				"Disks": []any{map[string]any{"IsBoot": true, "Size": 20}},
			},
			stringToSign: "ActionTestDisks.0.IsBoottrueDisks.0.Size20Price1.5PublicKeyucloudsomeone@example.com1296235120854146120Regioncn-wlcbSortCondition.ASCtrueSortCondition.FieldPubTimeTag.0t0Tag.1t1Tag.10t10Tag.2t2Tag.3t3Tag.4t4Tag.5t5Tag.6t6Tag.7t7Tag.8t8Tag.9t9Whole42" + vectorPrivateKey,
			signature:    "d9c284f8be250578ca21dc8325dc73f306be20ce",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Flatten(tc.in)
			require.NoError(t, err)
			p["PublicKey"] = vectorPublicKey
			assert.Equal(t, tc.stringToSign, StringToSign(p, vectorPrivateKey))
			assert.Equal(t, tc.signature, Sign(p, vectorPrivateKey))
		})
	}
}

// TestSignedFormVectorC pins the whole form body of vector C.
func TestSignedFormVectorC(t *testing.T) {
	t.Parallel()
	p, err := Flatten(map[string]any{
		"Action": "DescribeCommunityImages", "Region": "cn-wlcb", "Limit": 20,
		"Name": "stable diffusion", "Offset": 0, "Tag": "AIGC",
		"SortCondition": map[string]any{"ASC": false, "Field": "PubTime"},
	})
	require.NoError(t, err)
	assert.Equal(t,
		"Action=DescribeCommunityImages&Limit=20&Name=stable+diffusion&Offset=0&PublicKey=ucloudsomeone%40example.com1296235120854146120&Region=cn-wlcb&Signature=a7fd5f17b45057b4ec506f5d103fb049497055fb&SortCondition.ASC=false&SortCondition.Field=PubTime&Tag=AIGC",
		SignedForm(p, vectorPublicKey, vectorPrivateKey))
	_, signed := p["Signature"]
	assert.False(t, signed, "SignedForm must not modify its input")
}
