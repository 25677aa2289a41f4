package sandbox

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox/internal/dataset"
)

// TestDatasetNotStale proves data/images.json is what go generate writes
// today: run `go generate ./upstream/sandbox` when it fails.
func TestDatasetNotStale(t *testing.T) {
	t.Parallel()
	want, err := dataset.Marshal(dataset.Generate())
	require.NoError(t, err)
	assert.True(t, string(want) == string(datasetJSON), "data/images.json is stale: run go generate ./upstream/sandbox")
}

func TestDatasetInvariants(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	groups := s.Groups()
	require.NoError(t, dataset.Check(groups))
	require.GreaterOrEqual(t, len(groups), 120)

	statuses := map[string]int{}
	groupStatuses := map[string]int{}
	auth := map[int]int{}
	containers := map[string]int{}
	autoStart := map[bool]int{}
	free, paid, withPorts, withQR, withCover := 0, 0, 0, 0, 0
	authorAuth := map[string]int{}
	for _, g := range groups {
		groupStatuses[g.Status]++
		for _, img := range g.Data {
			statuses[img.Status]++
			auth[img.AuthInfo]++
			containers[img.Container]++
			autoStart[img.AutoStart]++
			if img.Price == 0 {
				free++
			} else {
				paid++
			}
			if len(img.SoftwarePorts) > 0 {
				withPorts++
			}
			if img.QrCodeUrl != "" {
				withQR++
			}
			if img.Cover != "" {
				withCover++
			}
			if a, ok := authorAuth[img.Author]; ok {
				assert.Equal(t, a, img.AuthInfo, "author %s has one AuthInfo", img.Author)
			}
			authorAuth[img.Author] = img.AuthInfo
			assert.Positive(t, img.Size)
			assert.NotEmpty(t, img.Readme)
			assert.NotEmpty(t, img.Tags)
			assert.NotEmpty(t, img.SupportedGpuTypes)
		}
	}
	for _, st := range []string{upstream.ImageStatusAvailable, upstream.ImageStatusOffline, upstream.ImageStatusReviewing} {
		assert.Positive(t, statuses[st], st)
	}
	assert.Positive(t, groupStatuses[upstream.GroupStatusAvailable])
	assert.Positive(t, groupStatuses[upstream.GroupStatusUnAvailable])
	for _, a := range []int{upstream.AuthCreator, upstream.AuthOfficial, upstream.AuthVerified} {
		assert.Positive(t, auth[a], "AuthInfo %d", a)
	}
	assert.Equal(t, upstream.AuthOfficial, authorAuth["UCloud"])
	assert.Equal(t, upstream.AuthOfficial, authorAuth["CompShare官方"])
	assert.Positive(t, containers[upstream.ContainerTrue])
	assert.Positive(t, containers[upstream.ContainerFalse])
	assert.Len(t, containers, 2)
	assert.Positive(t, autoStart[true])
	assert.Positive(t, autoStart[false])
	assert.Positive(t, free)
	assert.Positive(t, paid)
	assert.Positive(t, withPorts)
	assert.Positive(t, withQR)
	assert.Greater(t, withCover, (free+paid)*9/10, "most versions have a cover")
}

func TestDatasetEdgeCases(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	groups := s.Groups()

	_, img := groupOf(t, groups, EdgeEmptyCoverImageID)
	assert.Empty(t, img.Cover)

	g, img := groupOf(t, groups, EdgeReviewingImageID)
	assert.Equal(t, upstream.ImageStatusReviewing, img.Status)
	assert.Zero(t, img.PubTime)
	assert.Equal(t, upstream.GroupStatusAvailable, g.Status)

	g, img = groupOf(t, groups, EdgeRenamedImageID)
	assert.Contains(t, img.Name, EdgeRenamedImageWord)
	assert.NotEqual(t, g.ImageName, img.Name)
	for _, other := range groups {
		assert.NotContains(t, other.ImageName, EdgeRenamedImageWord)
	}

	g = findGroup(t, groups, EdgeUnavailableGroupID)
	assert.Equal(t, upstream.GroupStatusUnAvailable, g.Status)
	for _, img := range g.Data {
		assert.NotEqual(t, upstream.ImageStatusAvailable, img.Status)
	}

	g = findGroup(t, groups, EdgeUnsortedGroupID)
	pub := make([]int64, len(g.Data))
	for i, img := range g.Data {
		pub[i] = img.PubTime
	}
	assert.False(t, slices.IsSorted(pub), "ascending: %v", pub)
	slices.Reverse(pub)
	assert.False(t, slices.IsSorted(pub), "descending: %v", pub)

	g = findGroup(t, groups, EdgePartialTagGroupID)
	require.Len(t, g.Data, 3)
	with := 0
	for _, img := range g.Data {
		if slices.Contains(img.Tags, EdgePartialTag) {
			with++
		}
	}
	assert.Equal(t, 2, with)

	popular, authorGroups := 0, 0
	for _, g := range groups {
		if slices.ContainsFunc(g.Data, func(img upstream.Image) bool { return slices.Contains(img.Tags, EdgePopularTag) }) {
			popular++
		}
		if slices.ContainsFunc(g.Data, func(img upstream.Image) bool { return img.Author == EdgeMultiGroupAuthor }) {
			authorGroups++
		}
	}
	assert.GreaterOrEqual(t, popular, 10)
	assert.LessOrEqual(t, popular, 30)
	assert.GreaterOrEqual(t, authorGroups, 3)

	// Names in both scripts, as the catalogue has them.
	names := map[string]bool{}
	for _, g := range groups {
		names[g.ImageName] = true
	}
	for _, n := range []string{"Stable Diffusion WebUI", "ComfyUI", "LLaMA-Factory", "通义千问 Qwen2.5", "ChatGLM3", "深度学习基础环境", "PyTorch 2.x", "vLLM", "Ollama", "Jupyter"} {
		assert.True(t, slices.ContainsFunc(groups, func(g upstream.ImageGroup) bool { return len(g.ImageName) >= len(n) && g.ImageName[:len(n)] == n }), n)
	}
}

func TestGroupsIsADeepCopy(t *testing.T) {
	t.Parallel()
	s, err := New()
	require.NoError(t, err)
	a := s.Groups()
	want := a[0].Data[0].Tags[0]
	a[0].Data[0].Tags[0] = "changed"
	a[0].Data[0].Name = "changed"
	a[0].Data = nil
	b := s.Groups()
	assert.Equal(t, want, b[0].Data[0].Tags[0])
	assert.NotEqual(t, "changed", b[0].Data[0].Name)

	resp, err := s.Describe(&upstream.DescribeCommunityImagesRequest{Region: region})
	require.NoError(t, err)
	resp.CompshareImageGroup[0].Data[0].Tags[0] = "changed"
	assert.Equal(t, want, s.Groups()[0].Data[0].Tags[0])
}
