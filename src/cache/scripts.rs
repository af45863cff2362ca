//! The Lua scripts of `lua/`: loaded at start-up, called by SHA (reloaded on NOSCRIPT). Each
//! touches the keys of one hash slot only.

use fred::types::scripts::Script;

/// The Lua scripts of `lua/`, loaded at start-up and called by SHA (reloaded on NOSCRIPT).
pub struct Scripts {
    pub lease: Script,
    pub load_user: Script,
    pub load_video: Script,
    pub load_timeline: Script,
    pub load_chunk: Script,
    pub create_entity: Script,
    pub timeline_add: Script,
    pub user_add_video: Script,
    pub timeline_page: Script,
    pub play: Script,
    pub entity_apply: Script,
    pub friends: Script,
    pub conv_page: Script,
    pub feed_since: Script,
    pub flags: Script,
    pub rate: Script,
    pub session_set: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            lease: Script::from_lua(include_str!("../../lua/lease.lua")),
            load_user: Script::from_lua(include_str!("../../lua/load_user.lua")),
            load_video: Script::from_lua(include_str!("../../lua/load_video.lua")),
            load_timeline: Script::from_lua(include_str!("../../lua/load_timeline.lua")),
            load_chunk: Script::from_lua(include_str!("../../lua/load_chunk.lua")),
            create_entity: Script::from_lua(include_str!("../../lua/create_entity.lua")),
            timeline_add: Script::from_lua(include_str!("../../lua/timeline_add.lua")),
            user_add_video: Script::from_lua(include_str!("../../lua/user_add_video.lua")),
            timeline_page: Script::from_lua(include_str!("../../lua/timeline_page.lua")),
            play: Script::from_lua(include_str!("../../lua/play.lua")),
            entity_apply: Script::from_lua(include_str!("../../lua/entity_apply.lua")),
            friends: Script::from_lua(include_str!("../../lua/friends.lua")),
            conv_page: Script::from_lua(include_str!("../../lua/conv_page.lua")),
            feed_since: Script::from_lua(include_str!("../../lua/feed_since.lua")),
            flags: Script::from_lua(include_str!("../../lua/flags.lua")),
            rate: Script::from_lua(include_str!("../../lua/rate.lua")),
            session_set: Script::from_lua(include_str!("../../lua/session_set.lua")),
        }
    }
    pub(super) fn all(&self) -> [&Script; 17] {
        [
            &self.lease,
            &self.load_user,
            &self.load_video,
            &self.load_timeline,
            &self.load_chunk,
            &self.create_entity,
            &self.timeline_add,
            &self.user_add_video,
            &self.timeline_page,
            &self.play,
            &self.entity_apply,
            &self.friends,
            &self.conv_page,
            &self.feed_since,
            &self.flags,
            &self.rate,
            &self.session_set,
        ]
    }
}
