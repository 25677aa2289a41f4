// Package dataset generates the sandbox's community image dataset: a fixed,
// seeded and therefore reproducible set of version groups that looks like
// CompShare's community catalogue. It is run by ../gen (through go generate)
// to write ../../data/images.json, and by the sandbox's tests to prove that
// file is not stale. It does no I/O.
package dataset

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/compshare/imagegraph/upstream"
)

// Seed is the fixed seed of the generator's pseudo-random sequence.
const Seed = 20250601

// The edge cases the generator pins so that tests can find them.
const (
	// EmptyCoverImageID is a version whose Cover is empty.
	EmptyCoverImageID = "compshareImage-nocover00001"
	// ReviewingImageID is a version under review (Status Reviewing) with
	// PubTime 0, in a group that also has Available versions.
	ReviewingImageID = "compshareImage-reviewing001"
	// RenamedImageID is a version whose Name differs from its group's
	// ImageName and holds RenamedImageWord, which no group ImageName holds.
	RenamedImageID = "compshareImage-renamed00001"
	// RenamedImageWord is the word only RenamedImageID's Name contains.
	RenamedImageWord = "AnimateDiff"
	// UnavailableGroupID is a group with no Available version (Status UnAvailable).
	UnavailableGroupID = "group-offline1"
	// UnsortedGroupID is a group of four versions whose stored order is
	// neither ascending nor descending by PubTime.
	UnsortedGroupID = "group-unsorted"
	// PartialTagGroupID is a group of three versions of which only the last
	// two carry PartialTag.
	PartialTagGroupID = "group-parttag1"
	// PartialTag is the tag only some versions of PartialTagGroupID carry.
	PartialTag = "微调"
	// PopularTag is a tag carried by every version of 10 to 30 groups.
	PopularTag = "绘画"
	// MultiGroupAuthor is an author with versions in several groups.
	MultiGroupAuthor = "炼丹师小王"
)

// The bounds of every timestamp in the dataset: 2023-01-01 to 2025-12-31 UTC.
const (
	MinTime int64 = 1672531200
	MaxTime int64 = 1767225599
)

type rng struct{ s uint64 }

// next is splitmix64: tiny, fixed forever, so the output never depends on
// the Go release.
func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) between(lo, hi int64) int64 { return lo + int64(r.next()%uint64(hi-lo+1)) }

func (r *rng) chance(percent int) bool { return r.intn(100) < percent }

func (r *rng) pick(xs []string) string { return xs[r.intn(len(xs))] }

func (r *rng) id(n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.intn(len(alphabet))]
	}
	return string(b)
}

func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

// pickN returns n distinct elements of xs in a random order.
func (r *rng) pickN(xs []string, n int) []string {
	c := slices.Clone(xs)
	r.shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c[:min(n, len(c))]
}

type author struct {
	name string
	auth int
}

var authors = []author{
	{"UCloud", upstream.AuthOfficial},
	{"CompShare官方", upstream.AuthOfficial},
	{"AI绘画研究所", upstream.AuthVerified},
	{"LLM实验室", upstream.AuthVerified},
	{"TensorTom", upstream.AuthVerified},
	{"vision_lab", upstream.AuthVerified},
	{MultiGroupAuthor, upstream.AuthCreator},
	{"deepfun", upstream.AuthCreator},
	{"阿杰的AI工坊", upstream.AuthCreator},
	{"hf-mirror-fan", upstream.AuthCreator},
	{"云上炼丹炉", upstream.AuthCreator},
	{"小陈同学", upstream.AuthCreator},
}

func authorNamed(name string) author {
	for _, a := range authors {
		if a.name == name {
			return a
		}
	}
	panic("dataset: unknown author " + name)
}

var (
	portJupyter = upstream.SoftwarePort{Software: "JupyterLab", Port: 8888}
	portWebUI   = upstream.SoftwarePort{Software: "WebUI", Port: 7860}
	portComfy   = upstream.SoftwarePort{Software: "ComfyUI", Port: 8188}
	portSSH     = upstream.SoftwarePort{Software: "SSH", Port: 22}
)

type template struct {
	key      string
	name     string
	desc     string
	tags     []string
	ports    []upstream.SoftwarePort
	sizeMin  int64
	sizeMax  int64
	official bool // mostly published by official accounts
}

var templates = []template{
	{"sdwebui", "Stable Diffusion WebUI", "AUTOMATIC1111 版 Stable Diffusion WebUI，预装常用模型与插件，开箱即用的 AI 绘画环境。", []string{"AIGC", "绘画", "文生图"}, []upstream.SoftwarePort{portWebUI, portJupyter}, 20480, 61440, false},
	{"comfyui", "ComfyUI", "节点式 Stable Diffusion 工作流工具，预装 ComfyUI-Manager 与常用节点。", []string{"AIGC", "绘画", "工作流"}, []upstream.SoftwarePort{portComfy, portJupyter}, 20480, 81920, false},
	{"forge", "Stable Diffusion Forge", "显存优化版 WebUI，支持 SDXL 与 FLUX 模型。", []string{"AIGC", "绘画", "文生图"}, []upstream.SoftwarePort{portWebUI}, 20480, 51200, false},
	{"fooocus", "Fooocus", "专注出图的极简 SDXL 绘画工具。", []string{"AIGC", "绘画"}, []upstream.SoftwarePort{{Software: "Fooocus", Port: 7865}}, 15360, 30720, false},
	{"flux", "FLUX.1", "Black Forest Labs 的 FLUX.1 文生图模型推理环境。", []string{"AIGC", "绘画", "文生图"}, []upstream.SoftwarePort{portComfy}, 30720, 81920, false},
	{"kohya", "Kohya_ss LoRA 训练", "LoRA / DreamBooth 训练图形界面，适合训练自己的画风模型。", []string{"绘画", "训练", "LoRA"}, []upstream.SoftwarePort{portWebUI, portJupyter}, 15360, 40960, false},
	{"llamafactory", "LLaMA-Factory", "一站式大模型微调框架，支持 LoRA、QLoRA 与全参微调，带 WebUI。", []string{"大模型", "LLM", "微调"}, []upstream.SoftwarePort{portWebUI, portJupyter}, 20480, 61440, false},
	{"qwen", "通义千问 Qwen2.5", "阿里通义千问 Qwen2.5 系列模型推理环境，含 7B/14B 权重。", []string{"大模型", "LLM", "中文"}, []upstream.SoftwarePort{portWebUI}, 30720, 81920, true},
	{"chatglm", "ChatGLM3", "智谱 ChatGLM3-6B 中英双语对话模型。", []string{"大模型", "LLM", "中文"}, []upstream.SoftwarePort{portWebUI}, 20480, 40960, false},
	{"deepseek", "DeepSeek-R1 蒸馏版", "DeepSeek-R1 蒸馏模型推理环境，适合本地体验推理模型。", []string{"大模型", "LLM", "推理"}, []upstream.SoftwarePort{portWebUI}, 30720, 81920, false},
	{"vllm", "vLLM", "高吞吐大模型推理服务，提供 OpenAI 兼容 API。", []string{"大模型", "推理", "API"}, []upstream.SoftwarePort{{Software: "vLLM API", Port: 8000}}, 15360, 40960, true},
	{"ollama", "Ollama", "一条命令运行本地大模型，预拉取 Qwen 与 Llama 模型。", []string{"大模型", "推理"}, []upstream.SoftwarePort{{Software: "Ollama", Port: 11434}}, 10240, 40960, false},
	{"openwebui", "Open WebUI", "类 ChatGPT 的大模型对话界面，可对接 Ollama。", []string{"大模型", "对话"}, []upstream.SoftwarePort{{Software: "Open WebUI", Port: 8080}}, 10240, 30720, false},
	{"dlbase", "深度学习基础环境", "Ubuntu 22.04 + CUDA + cuDNN + Conda 的深度学习基础镜像。", []string{"深度学习", "基础环境"}, []upstream.SoftwarePort{portJupyter}, 10240, 20480, true},
	{"pytorch", "PyTorch 2.x", "PyTorch 2.x 官方环境，含 torchvision 与 torchaudio。", []string{"深度学习", "基础环境"}, []upstream.SoftwarePort{portJupyter}, 10240, 25600, true},
	{"tensorflow", "TensorFlow 2", "TensorFlow 2 GPU 环境，含 Keras。", []string{"深度学习", "基础环境"}, []upstream.SoftwarePort{portJupyter}, 10240, 25600, true},
	{"jupyter", "Jupyter", "JupyterLab 数据科学环境，预装 numpy、pandas 与 matplotlib。", []string{"开发环境", "数据分析"}, []upstream.SoftwarePort{portJupyter}, 10240, 15360, true},
	{"cuda", "CUDA 12 开发环境", "CUDA 12 编译工具链与 Nsight，适合自定义算子开发。", []string{"基础环境", "开发环境"}, nil, 10240, 20480, true},
	{"gptsovits", "GPT-SoVITS", "少样本语音克隆与 TTS，一分钟素材即可训练音色。", []string{"语音", "语音合成", "AIGC"}, []upstream.SoftwarePort{{Software: "GPT-SoVITS WebUI", Port: 9874}}, 15360, 30720, false},
	{"whisper", "Whisper", "OpenAI Whisper 语音识别，支持多语种转写。", []string{"语音", "语音识别"}, []upstream.SoftwarePort{portJupyter}, 10240, 20480, false},
	{"cosyvoice", "CosyVoice", "通义实验室 CosyVoice 多语言语音合成。", []string{"语音", "语音合成"}, []upstream.SoftwarePort{portWebUI}, 15360, 30720, false},
	{"fishspeech", "Fish-Speech", "Fish-Speech 文本转语音，中文效果出色。", []string{"语音", "语音合成"}, []upstream.SoftwarePort{portWebUI}, 10240, 25600, false},
	{"musetalk", "MuseTalk 数字人", "实时口型同步数字人生成。", []string{"数字人", "视频", "AIGC"}, []upstream.SoftwarePort{portWebUI}, 20480, 51200, false},
	{"svd", "Stable Video Diffusion", "图生视频模型推理环境。", []string{"视频", "AIGC"}, []upstream.SoftwarePort{portComfy}, 30720, 61440, false},
	{"yolo", "YOLOv8", "Ultralytics YOLOv8 目标检测训练与推理。", []string{"计算机视觉", "目标检测"}, []upstream.SoftwarePort{portJupyter}, 10240, 20480, false},
	{"sam", "Segment Anything", "Meta SAM 图像分割，含 ViT-H 权重。", []string{"计算机视觉", "图像分割"}, []upstream.SoftwarePort{portJupyter}, 10240, 25600, false},
	{"textgen", "Text Generation WebUI", "oobabooga 大模型聊天界面，支持 GGUF 与 GPTQ。", []string{"大模型", "LLM"}, []upstream.SoftwarePort{portWebUI}, 15360, 40960, false},
	{"dify", "Dify", "开源 LLM 应用开发平台，可视化编排 Agent 与工作流。", []string{"大模型", "应用开发"}, []upstream.SoftwarePort{{Software: "Dify", Port: 80}}, 10240, 20480, false},
	{"chatchat", "Langchain-Chatchat", "基于 LangChain 的本地知识库问答。", []string{"大模型", "知识库", "RAG"}, []upstream.SoftwarePort{{Software: "WebUI", Port: 8501}}, 20480, 51200, false},
	{"mineru", "MinerU 文档解析", "PDF 转 Markdown 的高精度文档解析工具。", []string{"OCR", "文档解析"}, []upstream.SoftwarePort{portWebUI}, 10240, 30720, false},
	{"internvl", "InternVL 多模态", "书生 InternVL 多模态大模型，支持图文对话。", []string{"多模态", "大模型"}, []upstream.SoftwarePort{portWebUI}, 30720, 81920, false},
	{"llama", "Llama 3.1", "Meta Llama 3.1 8B Instruct 推理环境。", []string{"大模型", "LLM", "推理"}, []upstream.SoftwarePort{portWebUI, portJupyter}, 20480, 61440, false},
}

var suffixes = []string{"", " 一键启动版", " 整合包", " 中文版", " 最新版", " 官方镜像", " Lite", " 全家桶", " 加速版", " 开箱即用", " 教程版", " 稳定版"}

var extraTags = []string{"CUDA12", "Python3.10", "热门", "新手友好", "一键部署", "API"}

var gpuTypes = []string{"RTX 4090", "RTX 4090D", "RTX 3090", "RTX 3080Ti", "A100", "A800", "H20", "L40S", "P40"}

var versionDescs = []string{"首次发布", "修复已知问题", "升级 CUDA 12.4", "新增常用插件", "更新模型权重", "优化启动速度", "适配 RTX 4090", "精简镜像体积", "升级 Python 3.11", "默认开启自启动"}

var prices = []float64{0.5, 0.99, 1.2, 1.5, 2.88}

// pins says which generated group each edge case lands on: the key of a
// template and the index of the group among that template's groups.
type pin struct {
	template string
	index    int
}

var (
	pinUnsorted    = pin{"comfyui", 0}
	pinRenamed     = pin{"comfyui", 1}
	pinPartialTag  = pin{"qwen", 0}
	pinUnavailable = pin{"ollama", 0}
	pinEmptyCover  = pin{"jupyter", 0}
	pinReviewing   = pin{"vllm", 0}
	pinMultiAuthor = []pin{{"sdwebui", 0}, {"llamafactory", 0}, {"whisper", 0}}
	// The groups whose newest versions share one PubTime, so that a PubTime
	// sort has a tie to break.
	pinPubTimeTie = []pin{{"dify", 0}, {"dify", 1}, {"mineru", 0}}
)

const day = 86400

// Generate builds the dataset. Its output depends on nothing but Seed and
// this file; it panics if the result breaks one of the invariants the
// sandbox documents, so a bad change cannot be committed silently.
func Generate() []upstream.ImageGroup {
	r := &rng{s: Seed}
	var groups []upstream.ImageGroup
	var tied []int
	for _, t := range templates {
		n := 4 + r.intn(2)
		names := r.pickN(suffixes, n)
		for i, suffix := range names {
			p := pin{t.key, i}
			versions := weightedVersions(r)
			switch p {
			case pinUnsorted:
				versions = 4
			case pinPartialTag:
				versions = 3
			case pinRenamed, pinUnavailable, pinReviewing:
				versions = max(versions, 2)
			}
			a := pickAuthor(r, t)
			if slices.Contains(pinMultiAuthor, p) {
				a = authorNamed(MultiGroupAuthor)
			}
			g := makeGroup(r, t, t.name+suffix, a, versions)
			applyPins(r, p, &g)
			if slices.Contains(pinPubTimeTie, p) {
				tied = append(tied, len(groups))
			}
			groups = append(groups, g)
		}
	}
	tiePubTime(groups, tied)
	// The stored order is the sandbox's "default" order: a fixed shuffle.
	r.shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	if err := Check(groups); err != nil {
		panic(err)
	}
	return groups
}

// tiePubTime gives the newest published version of each group at the
// indexes the same PubTime: the latest of theirs, so no time goes backwards.
func tiePubTime(groups []upstream.ImageGroup, at []int) {
	newest := func(g *upstream.ImageGroup) *upstream.Image {
		var n *upstream.Image
		for j := range g.Data {
			if img := &g.Data[j]; img.PubTime != 0 && (n == nil || img.PubTime > n.PubTime) {
				n = img
			}
		}
		return n
	}
	var tie int64
	for _, i := range at {
		if n := newest(&groups[i]); n != nil {
			tie = max(tie, n.PubTime)
		}
	}
	for _, i := range at {
		if n := newest(&groups[i]); n != nil {
			n.PubTime = tie
			n.UpdateTime = max(n.UpdateTime, tie)
		}
	}
}

func weightedVersions(r *rng) int {
	switch x := r.intn(100); {
	case x < 30:
		return 1
	case x < 55:
		return 2
	case x < 75:
		return 3
	case x < 90:
		return 4
	default:
		return 5
	}
}

func pickAuthor(r *rng, t template) author {
	if t.official && r.chance(70) {
		return authors[r.intn(2)]
	}
	return authors[2+r.intn(len(authors)-2)]
}

func makeGroup(r *rng, t template, name string, a author, versions int) upstream.ImageGroup {
	g := upstream.ImageGroup{
		GroupId:        "group-" + r.id(8),
		ImageName:      name,
		ImageDesc:      t.desc,
		CreatedCount:   popularity(r, 5000),
		FavoritesCount: popularity(r, 2000),
		RecommendCount: popularity(r, 300),
		ImageUseTime:   popularity(r, 100000),
	}
	freeGroup := r.chance(55)
	price := prices[r.intn(len(prices))]
	gpus := r.pickN(gpuTypes, 2+r.intn(4))
	container := upstream.ContainerTrue
	if r.chance(15) {
		container = upstream.ContainerFalse
	}
	qr := ""
	if a.auth != upstream.AuthOfficial && r.chance(50) {
		qr = "https://compshare-community.cn-wlcb.ufileos.com/qrcode/" + r.id(16) + ".png"
	}
	ports := slices.Clone(t.ports)
	if r.chance(40) {
		ports = append(ports, portSSH)
	}
	if ports == nil {
		ports = []upstream.SoftwarePort{}
	}

	created := r.between(MinTime, MinTime+900*day)
	major, minor := 1, 0
	for v := range versions {
		last := v == versions-1
		img := upstream.Image{
			CompShareImageId:  "compshareImage-" + r.id(12),
			Name:              name,
			Author:            a.name,
			AuthInfo:          a.auth,
			Price:             price,
			VersionName:       fmt.Sprintf("v%d.%d", major, minor),
			VersionDesc:       versionDescs[r.intn(len(versionDescs))],
			Description:       t.desc,
			Tags:              slices.Clone(t.tags),
			SupportedGpuTypes: slices.Clone(gpus),
			Cover:             "https://compshare-community.cn-wlcb.ufileos.com/cover/" + r.id(16) + ".png",
			Container:         container,
			AutoStart:         r.chance(50),
			Size:              r.between(t.sizeMin, t.sizeMax),
			QrCodeUrl:         qr,
			SoftwarePorts:     slices.Clone(ports),
		}
		if v == 0 {
			img.VersionDesc = "首次发布"
		}
		if r.chance(15) {
			img.Name = name + " " + img.VersionName
		}
		if freeGroup {
			img.Price = 0
		} else if !last && r.chance(20) {
			img.Price = 0 // an older version offered for free
		}
		for range r.intn(3) {
			if tag := r.pick(extraTags); !slices.Contains(img.Tags, tag) {
				img.Tags = append(img.Tags, tag)
			}
		}
		if r.chance(30) {
			if gpu := r.pick(gpuTypes); !slices.Contains(img.SupportedGpuTypes, gpu) {
				img.SupportedGpuTypes = append(img.SupportedGpuTypes, gpu)
			}
		}
		if r.chance(3) {
			img.Cover = ""
		}
		switch x := r.intn(100); {
		case last && x < 80, !last && x < 65:
			img.Status = upstream.ImageStatusAvailable
		case last && x < 92:
			img.Status = upstream.ImageStatusReviewing
		default:
			img.Status = upstream.ImageStatusOffline
		}
		img.CreateTime = created
		setTimes(r, &img)
		img.Readme = readme(name, img.SoftwarePorts)
		g.Data = append(g.Data, img)

		created += r.between(3*day, 60*day)
		if r.chance(30) {
			major, minor = major+1, 0
		} else {
			minor++
		}
	}
	// Versions are usually stored newest first; some groups keep another order.
	if r.chance(70) {
		slices.Reverse(g.Data)
	} else if len(g.Data) > 2 {
		r.shuffle(len(g.Data), func(i, j int) { g.Data[i], g.Data[j] = g.Data[j], g.Data[i] })
	}
	setGroupStatus(&g)
	return g
}

// popularity returns a skewed count in [0, max): most groups are little used,
// and many share small values, so sorts have ties.
func popularity(r *rng, limit int) int {
	switch x := r.intn(100); {
	case x < 10:
		return 0
	case x < 50:
		return r.intn(limit / 100)
	case x < 85:
		return r.intn(limit / 10)
	default:
		return r.intn(limit)
	}
}

// setTimes fills PubTime and UpdateTime from CreateTime: PubTime is 0 for a
// version under review, else between CreateTime and UpdateTime; everything is
// clamped to MaxTime, which keeps the order.
func setTimes(r *rng, img *upstream.Image) {
	if img.Status == upstream.ImageStatusReviewing {
		img.PubTime = 0
		img.UpdateTime = min(img.CreateTime+r.between(0, 2*day), MaxTime)
	} else {
		img.PubTime = min(img.CreateTime+r.between(3600, 3*day), MaxTime)
		img.UpdateTime = min(img.PubTime+r.between(0, 30*day), MaxTime)
	}
	img.CreateTime = min(img.CreateTime, MaxTime)
}

func readme(name string, ports []upstream.SoftwarePort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<h3>%s</h3>", name)
	if len(ports) > 0 {
		b.WriteString("<ul>")
		for _, p := range ports {
			fmt.Fprintf(&b, "<li>%s：端口 %d</li>", p.Software, p.Port)
		}
		b.WriteString("</ul>")
	}
	b.WriteString("<p>启动后在控制台点击端口访问。</p>")
	return b.String()
}

func setGroupStatus(g *upstream.ImageGroup) {
	g.Status = upstream.GroupStatusUnAvailable
	for _, img := range g.Data {
		if img.Status == upstream.ImageStatusAvailable {
			g.Status = upstream.GroupStatusAvailable
		}
	}
}

// byCreate returns g's versions ordered oldest first.
func byCreate(g *upstream.ImageGroup) []*upstream.Image {
	out := make([]*upstream.Image, len(g.Data))
	for i := range g.Data {
		out[i] = &g.Data[i]
	}
	slices.SortStableFunc(out, func(a, b *upstream.Image) int { return cmp.Compare(a.CreateTime, b.CreateTime) })
	return out
}

func applyPins(r *rng, p pin, g *upstream.ImageGroup) {
	switch p {
	case pinUnsorted:
		g.GroupId = UnsortedGroupID
		v := byCreate(g)
		for _, img := range v {
			img.Status = upstream.ImageStatusAvailable
			setTimes(r, img)
		}
		// Stored as v1, v3, v0, v2 by age: neither ascending nor descending.
		g.Data = []upstream.Image{*v[1], *v[3], *v[0], *v[2]}
	case pinRenamed:
		v := byCreate(g)
		newest := v[len(v)-1]
		newest.CompShareImageId = RenamedImageID
		newest.Name = "ComfyUI " + RenamedImageWord + " 视频工作流"
	case pinPartialTag:
		g.GroupId = PartialTagGroupID
		for i, img := range byCreate(g) {
			img.Tags = slices.DeleteFunc(img.Tags, func(s string) bool { return s == PartialTag })
			if i > 0 {
				img.Tags = append(img.Tags, PartialTag)
			}
		}
	case pinUnavailable:
		g.GroupId = UnavailableGroupID
		v := byCreate(g)
		for i, img := range v {
			img.Status = upstream.ImageStatusOffline
			if i == len(v)-1 {
				img.Status = upstream.ImageStatusReviewing
			}
			setTimes(r, img)
			img.Readme = readme(img.Name, img.SoftwarePorts)
		}
	case pinEmptyCover:
		v := byCreate(g)
		v[0].CompShareImageId = EmptyCoverImageID
		v[0].Cover = ""
	case pinReviewing:
		v := byCreate(g)
		for _, img := range v[:len(v)-1] {
			img.Status = upstream.ImageStatusAvailable
			setTimes(r, img)
		}
		newest := v[len(v)-1]
		newest.CompShareImageId = ReviewingImageID
		newest.Status = upstream.ImageStatusReviewing
		setTimes(r, newest)
	}
	setGroupStatus(g)
}

// Check verifies the invariants the sandbox documents for a dataset: at least
// 120 groups of 1 to 5 versions, unique well-formed ids, group Status
// consistent with the versions, times in range and ordered, no nil slices,
// and every pinned edge case present.
func Check(groups []upstream.ImageGroup) error {
	if len(groups) < 120 {
		return fmt.Errorf("dataset: %d groups, want at least 120", len(groups))
	}
	ids := map[string]bool{}
	popular := 0
	authorGroups := map[string]map[string]bool{}
	for _, g := range groups {
		if !validID(g.GroupId, "group-", 8) || ids[g.GroupId] {
			return fmt.Errorf("dataset: bad or duplicate group id %q", g.GroupId)
		}
		ids[g.GroupId] = true
		if n := len(g.Data); n < 1 || n > 5 {
			return fmt.Errorf("dataset: group %s has %d versions", g.GroupId, n)
		}
		want := upstream.GroupStatusUnAvailable
		allPopular := true
		for _, img := range g.Data {
			if !validID(img.CompShareImageId, "compshareImage-", 12) || ids[img.CompShareImageId] {
				return fmt.Errorf("dataset: bad or duplicate image id %q", img.CompShareImageId)
			}
			ids[img.CompShareImageId] = true
			if img.Status == upstream.ImageStatusAvailable {
				want = upstream.GroupStatusAvailable
			}
			if img.CreateTime < MinTime || img.UpdateTime > MaxTime || img.CreateTime > img.UpdateTime ||
				(img.PubTime != 0 && (img.PubTime < img.CreateTime || img.PubTime > MaxTime)) {
				return fmt.Errorf("dataset: image %s has bad times", img.CompShareImageId)
			}
			if (img.PubTime == 0) != (img.Status == upstream.ImageStatusReviewing) {
				return fmt.Errorf("dataset: image %s: PubTime 0 iff Reviewing", img.CompShareImageId)
			}
			if img.Tags == nil || img.SupportedGpuTypes == nil || img.SoftwarePorts == nil {
				return fmt.Errorf("dataset: image %s has a nil slice", img.CompShareImageId)
			}
			allPopular = allPopular && slices.Contains(img.Tags, PopularTag)
			if authorGroups[img.Author] == nil {
				authorGroups[img.Author] = map[string]bool{}
			}
			authorGroups[img.Author][g.GroupId] = true
		}
		if g.Status != want {
			return fmt.Errorf("dataset: group %s has Status %s, want %s", g.GroupId, g.Status, want)
		}
		if allPopular {
			popular++
		}
	}
	if popular < 10 || popular > 30 {
		return fmt.Errorf("dataset: tag %s is on %d groups, want 10 to 30", PopularTag, popular)
	}
	if len(authorGroups[MultiGroupAuthor]) < 3 {
		return fmt.Errorf("dataset: author %s is in %d groups, want at least 3", MultiGroupAuthor, len(authorGroups[MultiGroupAuthor]))
	}
	for _, id := range []string{EmptyCoverImageID, ReviewingImageID, RenamedImageID, UnavailableGroupID, UnsortedGroupID, PartialTagGroupID} {
		if !ids[id] {
			return fmt.Errorf("dataset: edge case %s missing", id)
		}
	}
	return nil
}

func validID(id, prefix string, n int) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != n {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// Marshal renders groups as the committed JSON file: an array with one
// compact group per line (small, and diffs stay per group), HTML left
// unescaped so the readmes stay readable, ending in a newline.
func Marshal(groups []upstream.ImageGroup) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteString("[\n")
	for i, g := range groups {
		if err := enc.Encode(g); err != nil {
			return nil, err
		}
		if i < len(groups)-1 {
			buf.Truncate(buf.Len() - 1)
			buf.WriteString(",\n")
		}
	}
	buf.WriteString("]\n")
	return buf.Bytes(), nil
}
