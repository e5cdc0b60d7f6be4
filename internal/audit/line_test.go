package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// marshaledLine is what encode wrote when it used encoding/json: the reference the line
// writer must match byte for byte.
func marshaledLine(e *Event) ([]byte, error) {
	out := recorded(e)
	line, err := json.Marshal(&out)
	if err != nil {
		return nil, err
	}
	return append(line, '\n'), nil
}

func checkLineMatches(t *testing.T, e *Event) {
	t.Helper()
	want, wantErr := marshaledLine(e)
	got, err := encode(e)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("encode error: got %v, want %v", err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encode:\n got %s\nwant %s", got, want)
	}
}

func TestLineMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	received := time.Date(2026, 12, 3, 19, 48, 0, 123456789, time.UTC)
	paris := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		edit func(e *Event)
	}{
		{"request received", func(e *Event) {}},
		{"response complete, every field", func(e *Event) {
			e.Stage = StageResponseComplete
			e.Route = "/v1/tunnel-sites/:siteId/servers/:serverId"
			e.User = User{Kind: UserKindEntra, Name: "deployer", AppID: "8f1c"}
			e.SourceIPs = []string{"192.0.2.7", "2001:db8::1"}
			e.UserAgent = "deploy-tool/1.0"
			e.ResponseStatus = &ResponseStatus{Code: 502, Reason: "upstream", Message: "Graph <failed>"}
			e.Upstream = &Upstream{RequestID: "r-1", Code: "ServiceUnavailable", Attempts: 4,
				Status: 503}
			e.StageTimestamp = received.Add(1500 * time.Millisecond)
			e.LatencySeconds = 1.5
			e.Annotations = map[string]string{AnnotationError: "upstream", AnnotationRefused: "x"}
		}},
		{"empty user, empty slices and maps", func(e *Event) {
			e.User = User{}
			e.SourceIPs = []string{}
			e.ObjectRef = &ObjectRef{}
			e.RequestObject = map[string]any{}
			e.Annotations = map[string]string{}
			e.Upstream = &Upstream{}
			e.ResponseStatus = &ResponseStatus{}
		}},
		{"metadata level drops the body", func(e *Event) { e.Level = LevelMetadata }},
		{"hostile strings everywhere", func(e *Event) {
			hostile := "\n{\"auditID\":\"forged\"}\r\t\b\f\x00\x1f\x7f</script>&\u2028\u2029" +
				"\xff\xfe\xc3é日本\U0001F600\\"
			e.AuditID, e.UserAgent, e.RequestURI, e.Route = hostile, hostile, hostile, hostile
			e.User = User{Kind: hostile, Name: hostile, AppID: hostile}
			e.SourceIPs = []string{hostile}
			e.ObjectRef = &ObjectRef{SiteID: hostile, ServerID: hostile}
			e.RequestObject = map[string]any{hostile: hostile, "displayName": hostile}
			e.ResponseStatus = &ResponseStatus{Code: 400, Reason: hostile, Message: hostile}
			e.Upstream = &Upstream{RequestID: hostile, Code: hostile}
			e.Annotations = map[string]string{hostile: hostile}
		}},
		{"values other than strings", func(e *Event) {
			e.RequestObject = map[string]any{"n": json.Number("12.5e3"), "f": 0.1, "t": true,
				"z": false, "null": nil, "list": []any{"a", 1.0}, "obj": map[string]any{"<": ">"}}
		}},
		{"invalid json.Number", func(e *Event) {
			e.RequestObject = map[string]any{"n": json.Number("twelve")}
		}},
		{"latency in exponent form", func(e *Event) { e.LatencySeconds = 5e-7 }},
		{"latency just above exponent form", func(e *Event) { e.LatencySeconds = 1e-6 }},
		{"latency with a two-digit exponent", func(e *Event) { e.LatencySeconds = 1.25e-12 }},
		{"huge latency", func(e *Event) { e.LatencySeconds = 3e21 }},
		{"negative latency", func(e *Event) { e.LatencySeconds = -0.000123 }},
		{"latency NaN", func(e *Event) { e.LatencySeconds = math.NaN() }},
		{"latency infinite", func(e *Event) { e.LatencySeconds = math.Inf(1) }},
		{"zero times", func(e *Event) {
			e.RequestReceivedTimestamp, e.StageTimestamp = time.Time{}, time.Time{}
		}},
		{"time in a zone", func(e *Event) { e.StageTimestamp = received.In(paris) }},
		{"time without nanoseconds", func(e *Event) {
			e.StageTimestamp = received.Truncate(time.Second)
		}},
		{"year JSON cannot hold", func(e *Event) { e.StageTimestamp = received.AddDate(8000, 0, 0) }},
		{"negative year", func(e *Event) { e.StageTimestamp = received.AddDate(-2100, 0, 0) }},
		{"many request object members", func(e *Event) {
			for _, c := range "abcdefghijklmnopqrstuvwxyz" {
				e.RequestObject[string(c)+"name"] = string(c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := testEvent("line")
			e.Stage = StageRequestReceived
			e.RequestReceivedTimestamp, e.StageTimestamp = received, received
			tt.edit(e)
			checkLineMatches(t, e)
		})
	}
}

// TestLineWritesEveryField fills every field of an Event, whatever fields it has, so a field
// added to Event but not to the line writer fails here instead of vanishing from the trail.
func TestLineWritesEveryField(t *testing.T) {
	t.Parallel()
	e := &Event{}
	fillEveryField(t, reflect.ValueOf(e).Elem(), "Event")
	e.Level = LevelRequest // the level that records every field
	checkLineMatches(t, e)
}

// fillEveryField sets v, and everything it holds, to a value that is not its zero value.
func fillEveryField(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(path)
	case reflect.Int, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			v.SetInt(int64(time.Second))
			return
		}
		v.SetInt(7)
	case reflect.Float64:
		v.SetFloat(0.25)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillEveryField(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillEveryField(t, v.Index(0), path+"[0]")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		elem := reflect.New(v.Type().Elem()).Elem()
		if elem.Kind() == reflect.Interface {
			elem.Set(reflect.ValueOf(path + ".value"))
		} else {
			fillEveryField(t, elem, path+".value")
		}
		v.SetMapIndex(reflect.ValueOf(path+".key"), elem)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 4, 8, 30, 0, 5, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillEveryField(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	default:
		t.Fatalf("%s: no way to fill a %s; teach fillEveryField", path, v.Type())
	}
}

func FuzzLine(f *testing.F) {
	f.Add("edge-1", "deploy-tool/1.0", "displayName", "a\u2028b<\x00\xff", 0.25, 200)
	f.Add("", "", "", "", 0.0, 0)
	f.Add("\"\\", "\t\n", "\xe2\x80", "\U0001F600", 1e-7, -1)
	f.Fuzz(func(t *testing.T, id, agent, name, value string, latency float64, code int) {
		e := testEvent(id)
		e.Stage = StageResponseComplete
		e.UserAgent = agent
		e.RequestObject[name] = value
		e.ResponseStatus = &ResponseStatus{Code: code, Message: value}
		e.Annotations = map[string]string{name: value}
		e.RequestReceivedTimestamp = time.Unix(int64(code), int64(len(value))).UTC()
		e.StageTimestamp = e.RequestReceivedTimestamp
		e.LatencySeconds = latency
		checkLineMatches(t, e)
	})
}
