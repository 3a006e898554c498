"""Everything that knows DingTalk's wire, and the only code that imports dingtalk_stream.

settings   DingTalkSettings: credentials and every endpoint (DUBAN_DINGTALK_*)
stream     StreamClient: the SDK's client with our connection loop
inbound    InboundHandler: frame → Incoming → dispatch → replies through the session webhook
openapi    OpenApiClient: token, robot messages, webhook replies, media, org chart → SendError
transport  DingTalkTransport: bot.transport.Transport over the robot APIs
markdown   @-mentions and dtmd:// action links in a markdown body
"""
