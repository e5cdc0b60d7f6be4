// Package policy decides what each authenticated caller may do: which tunnel server properties
// it may change, whether it may read, and on which sites. Grants come from a YAML file that is
// validated in full at start-up and can be reloaded (on SIGHUP) without dropping requests.
//
// # File format
//
// The file holds one list, callers. Each entry names one caller and identifies it by exactly
// one of appId (an Entra ID application id, for callers presenting bearer tokens) or
// apiKeySha256 (the SHA-256 of an API key, for callers presenting X-Api-Key). Anything not
// granted is denied, and a caller that authenticates but has no entry is denied everything.
//
//	callers:
//	  # A portal that renames servers and reads them back, on every site.
//	  - name: contoso-portal
//	    appId: 6b1a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
//	    read: true
//	    properties: [displayName]
//
//	  # A health agent that reports status and image digests on two sites only.
//	  - name: health-agent-west
//	    apiKeySha256: c2dd20644cc62341533d92a1a7daa22c51e502d923ab46306a9d92454433963c
//	    read: false
//	    properties:
//	      - tunnelServerHealthStatus
//	      - lastCheckinDateTime
//	      - agentImageDigest
//	      - serverImageDigest
//	    sites:
//	      - 0f6e2a54-2c1b-4f3e-9d8a-7b6c5d4e3f21
//	      - 3c2b1a09-8f7e-4d6c-b5a4-938271605f4e
//
// Fields:
//
//   - name: required and unique; it appears in logs and audit events, and it is the identity
//     of an API-key caller.
//   - appId or apiKeySha256: exactly one. appId is a GUID; apiKeySha256 is 64 hex characters.
//   - read: whether the caller may read tunnel servers (default false).
//   - properties: the properties the caller may change, from UpdatableProperties. The id and
//     @odata.type members of a body change nothing and need no grant.
//   - sites: the site ids (GUIDs) the caller may touch. Leave it out to allow every site; an
//     empty list is refused as an error because it would allow nothing.
//
// A grant must allow something: read, or at least one property. Unknown fields are errors.
//
// # Registering an API-key caller
//
// Generate a key and its hash, give the key to the caller and put only the hash in the file:
//
//	KEY=$(openssl rand -hex 32)
//	printf %s "$KEY" | sha256sum     # the apiKeySha256 value
//
// callers.GenerateAPIKey and callers.HashAPIKey do the same in Go. Removing the entry and
// reloading revokes the key.
//
// # Registering an Entra ID caller
//
// The caller's app registration needs the gateway's app role (TunnelServers.Write by default)
// granted with admin consent; its application (client) id goes in appId.
package policy
