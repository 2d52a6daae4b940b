use super::*;

const READ: &[&str] = &["social:read"];
const WRITE: &[&str] = &["social:read", "social:write"];

fn actor(user_id: &str, role: Role) -> Actor<'_> {
    Actor {
        user_id,
        tenant: "t1",
        role,
    }
}

fn facts(scopes: &'static [&'static str]) -> Facts<'static> {
    Facts {
        scopes,
        ..Facts::default()
    }
}

fn profile<'a>(owner: &'a str, public: bool) -> Object<'a> {
    Object::Profile {
        owner,
        tenant: "t1",
        public,
    }
}

fn post<'a>(author: &'a str, visibility: &'a str, hidden: bool) -> Object<'a> {
    Object::Post {
        id: "p1",
        author,
        tenant: "t1",
        visibility,
        hidden,
    }
}

#[test]
fn the_default_policies_validate_and_unknown_text_is_refused() {
    let authz = Authorizer::new();
    let alice = actor("alice", Role::Member);
    let public = profile("bob", true);
    assert!(authz.allows(&alice, Action::ReadProfile, &public, &facts(READ)));
    // Syntax errors and policies that do not match the schema are refused; the old set stays.
    for bad in [
        "permit (principal, action, resource",
        r#"permit (principal, action == Action::"ReadProfile", resource) when { resource.colour == "red" };"#,
        r#"permit (principal, action == Action::"Teleport", resource);"#,
    ] {
        assert!(authz.reload(bad).is_err(), "{bad}");
        assert!(authz.allows(&alice, Action::ReadProfile, &public, &facts(READ)));
    }
    // A valid set replaces the old one whole.
    authz.reload("").unwrap();
    assert!(
        !authz.allows(&alice, Action::ReadProfile, &public, &facts(READ)),
        "no policy, no permission: deny by default"
    );
}

#[test]
fn every_action_needs_its_scope() {
    let authz = Authorizer::new();
    let alice = actor("alice", Role::Member);
    let public = profile("bob", true);
    for scopes in [&[][..], &["openid"][..], &["social:write"][..]] {
        let f = Facts {
            scopes,
            ..Facts::default()
        };
        assert!(
            !authz.allows(&alice, Action::ReadProfile, &public, &f),
            "{scopes:?}"
        );
    }
    assert!(!authz.allows(&alice, Action::Follow, &public, &facts(READ)));
    assert!(authz.allows(&alice, Action::Follow, &public, &facts(WRITE)));
}

#[test]
fn objects_follow_owner_visibility_and_blocks() {
    let authz = Authorizer::new();
    let (alice, bob) = (actor("alice", Role::Member), actor("bob", Role::Member));
    let private = profile("bob", false);
    assert!(!authz.allows(&alice, Action::ReadProfile, &private, &facts(READ)));
    let as_follower = Facts {
        scopes: READ,
        follower: true,
        ..Facts::default()
    };
    assert!(authz.allows(&alice, Action::ReadProfile, &private, &as_follower));
    assert!(authz.allows(&bob, Action::ReadProfile, &private, &facts(READ)));
    // Only the owner changes a profile; nobody follows themselves.
    assert!(!authz.allows(&alice, Action::UpdateProfile, &private, &facts(WRITE)));
    assert!(authz.allows(&bob, Action::UpdateProfile, &private, &facts(WRITE)));
    assert!(!authz.allows(&bob, Action::Follow, &private, &facts(WRITE)));

    for (visibility, stranger, follower) in [
        ("public", true, true),
        ("followers", false, true),
        ("private", false, false),
    ] {
        let p = post("bob", visibility, false);
        assert_eq!(
            authz.allows(&alice, Action::ReadPost, &p, &facts(READ)),
            stranger,
            "{visibility}"
        );
        assert_eq!(
            authz.allows(&alice, Action::ReadPost, &p, &as_follower),
            follower,
            "{visibility}"
        );
        assert!(authz.allows(&bob, Action::ReadPost, &p, &facts(READ)));
    }
    // Only the author deletes; a post cannot be created in someone else's name.
    let p = post("bob", "public", false);
    assert!(!authz.allows(&alice, Action::DeletePost, &p, &facts(WRITE)));
    assert!(authz.allows(&bob, Action::DeletePost, &p, &facts(WRITE)));
    assert!(!authz.allows(&alice, Action::CreatePost, &p, &facts(WRITE)));

    // A block hides everything, public or not.
    let blocked = Facts {
        scopes: WRITE,
        follower: true,
        blocked: true,
    };
    assert!(!authz.allows(&alice, Action::ReadProfile, &profile("bob", true), &blocked));
    assert!(!authz.allows(&alice, Action::ReadPost, &p, &blocked));
    assert!(!authz.allows(&alice, Action::Follow, &profile("bob", true), &blocked));
    // …but blocking or muting back is always possible.
    assert!(authz.allows(&alice, Action::Block, &profile("bob", true), &blocked));
    assert!(authz.allows(&alice, Action::Mute, &profile("bob", true), &blocked));
}

#[test]
fn tenants_are_isolated_and_roles_inherit() {
    let authz = Authorizer::new();
    let moderation: &[&str] = &["social:read", "social:write", "moderation"];
    let with = |scopes| Facts {
        scopes,
        ..Facts::default()
    };
    let elsewhere = Object::Post {
        id: "p2",
        author: "carol",
        tenant: "t2",
        visibility: "public",
        hidden: false,
    };
    let p = post("bob", "public", false);
    let hidden = post("bob", "public", true);
    let member = actor("alice", Role::Member);
    let moderator = actor("mo", Role::Moderator);
    let tenant_admin = actor("ta", Role::TenantAdmin);
    let platform_admin = actor("pa", Role::PlatformAdmin);

    // Another tenant's public post: out of reach for everyone but platform admins.
    for a in [&member, &moderator, &tenant_admin] {
        assert!(!authz.allows(a, Action::ReadPost, &elsewhere, &with(moderation)));
    }
    assert!(authz.allows(
        &platform_admin,
        Action::ReadPost,
        &elsewhere,
        &with(moderation)
    ));
    assert!(authz.allows(&member, Action::ReadPost, &p, &with(READ)));

    // Moderation: moderators and every role above them; members not.
    assert!(!authz.allows(&member, Action::HidePost, &p, &with(moderation)));
    assert!(!authz.allows(&member, Action::ReadPost, &hidden, &with(READ)));
    for a in [&moderator, &tenant_admin, &platform_admin] {
        assert!(
            authz.allows(a, Action::HidePost, &p, &with(moderation)),
            "{a:?}"
        );
        assert!(
            authz.allows(a, Action::ReadPost, &hidden, &with(moderation)),
            "{a:?}"
        );
        // Roles inherit what members may do.
        assert!(authz.allows(a, Action::ReadPost, &p, &with(READ)), "{a:?}");
    }
    // …but a moderator still needs the moderation scope.
    assert!(!authz.allows(&moderator, Action::HidePost, &p, &with(WRITE)));
    // Moderating users is for tenant admins and above.
    let bob = profile("bob", true);
    assert!(!authz.allows(&moderator, Action::ModerateUser, &bob, &with(moderation)));
    assert!(authz.allows(&tenant_admin, Action::ModerateUser, &bob, &with(moderation)));
    assert!(authz.allows(
        &platform_admin,
        Action::ModerateUser,
        &bob,
        &with(moderation)
    ));
    // Demotion is the next decision: the role comes with each request.
    let demoted = actor("mo", Role::Member);
    assert!(!authz.allows(&demoted, Action::HidePost, &p, &with(moderation)));
}

#[test]
fn conversations_are_for_their_participants() {
    let authz = Authorizer::new();
    let messages: &[&str] = &["messages"];
    let f = Facts {
        scopes: messages,
        ..Facts::default()
    };
    let dm = Object::Conversation {
        id: "c1",
        participants: &["alice", "bob"],
        tenant: "t1",
    };
    for who in ["alice", "bob"] {
        assert!(authz.allows(&actor(who, Role::Member), Action::ReadConversation, &dm, &f));
        assert!(authz.allows(&actor(who, Role::Member), Action::SendMessage, &dm, &f));
    }
    for who in [actor("eve", Role::Member), actor("ta", Role::TenantAdmin)] {
        assert!(
            !authz.allows(&who, Action::ReadConversation, &dm, &f),
            "{who:?}"
        );
    }
    assert!(!authz.allows(
        &actor("alice", Role::Member),
        Action::ReadConversation,
        &dm,
        &facts(READ)
    ));
}

/// RES-5: decisions made while the policies are reloaded 100 times are each what either set
/// decides — here both decide the same — never a transient allow or deny.
#[test]
fn reloads_under_load_never_change_a_decision() {
    let authz = Arc::new(Authorizer::new());
    // The same decisions, written differently: one extra, irrelevant forbid.
    let variant = format!(
        "{DEFAULT_POLICIES}\n@id(\"no-moderation-on-sundays\")\nforbid (principal, action == Action::\"ModerateUser\", resource) when {{ context.scopes.contains(\"sunday\") }};\n"
    );
    let cases: Vec<(
        Actor<'static>,
        Action,
        Object<'static>,
        Facts<'static>,
        bool,
    )> = vec![
        (
            actor("alice", Role::Member),
            Action::ReadProfile,
            profile("bob", true),
            facts(READ),
            true,
        ),
        (
            actor("alice", Role::Member),
            Action::ReadProfile,
            profile("bob", false),
            facts(READ),
            false,
        ),
        (
            actor("alice", Role::Member),
            Action::ReadPost,
            post("bob", "public", false),
            facts(READ),
            true,
        ),
        (
            actor("alice", Role::Member),
            Action::ReadPost,
            post("bob", "public", false),
            facts(&[]),
            false,
        ),
        (
            actor("mo", Role::Moderator),
            Action::ReadPost,
            post("bob", "private", true),
            facts(&["social:read", "moderation"]),
            true,
        ),
        (
            actor("mo", Role::Moderator),
            Action::ReadPost,
            post("bob", "private", true),
            facts(&["moderation"]),
            false,
        ),
    ];
    let cases = Arc::new(cases);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (authz, cases, stop) = (authz.clone(), cases.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut decided = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || decided < 2_000 {
                    for (a, action, object, f, expected) in cases.iter() {
                        assert_eq!(authz.allows(a, *action, object, f), *expected, "{action:?}");
                        decided += 1;
                    }
                }
                decided
            })
        })
        .collect();
    for round in 0..100 {
        let text = if round % 2 == 0 {
            variant.as_str()
        } else {
            DEFAULT_POLICIES
        };
        authz.reload(text).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let decided: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(decided >= 4_000, "{decided}");
}

/// Deciding with the policies of the action alone gives the whole set's answer, for every
/// action on every kind of object, every role, inside and across tenants, with and without the
/// follow, block and scope facts.
#[test]
fn each_action_is_decided_by_its_slice_as_by_the_whole_set() {
    let authz = Authorizer::new();
    let whole = PolicySet::from_str(DEFAULT_POLICIES).unwrap();
    let engine = cedar_policy::Authorizer::new();
    let everything: &[&str] = &["social:read", "social:write", "messages", "moderation"];
    let objects = [
        profile("bob", true),
        profile("alice", false),
        post("bob", "followers", false),
        post("alice", "private", true),
        post("bob", "public", true),
        Object::Conversation {
            id: "c1",
            participants: &["alice", "bob"],
            tenant: "t1",
        },
        Object::Post {
            id: "p2",
            author: "bob",
            tenant: "t2",
            visibility: "public",
            hidden: false,
        },
    ];
    let (mut compared, mut allowed) = (0, 0);
    for role in Role::ALL {
        for who in ["alice", "carol"] {
            let actor = actor(who, role);
            for action in Action::ALL {
                for object in &objects {
                    for (follower, blocked) in [(false, false), (true, false), (true, true)] {
                        for scopes in [everything, READ] {
                            let facts = Facts {
                                scopes,
                                follower,
                                blocked,
                            };
                            // Actions apply to one kind of object; the rest is not a request.
                            let context = Authorizer::context(&facts).unwrap();
                            let Ok(request) = authz.request(&actor, action, object, context) else {
                                continue;
                            };
                            let entities = authz.entities(&actor, [object].into_iter()).unwrap();
                            let expected = engine.is_authorized(&request, &whole, &entities);
                            let sliced = authz.allows(&actor, action, object, &facts);
                            assert_eq!(
                                sliced,
                                expected.decision() == Decision::Allow,
                                "{actor:?} {action:?} {object:?} {facts:?}"
                            );
                            compared += 1;
                            allowed += usize::from(sliced);
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 300, "{compared} decisions compared");
    assert!(
        allowed > 50 && allowed < compared,
        "{allowed} of {compared} allowed"
    );
}

/// A page decided at once answers as each object decided alone, in order.
#[test]
fn a_page_is_decided_as_each_post_alone() {
    let authz = Authorizer::new();
    let asks: Vec<(Object, Facts)> = [
        (post("bob", "followers", false), false),
        (post("bob", "followers", false), true),
        (post("alice", "private", true), false),
        (post("carol", "public", false), false),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (object, follower))| {
        let Object::Post {
            author,
            visibility,
            hidden,
            tenant,
            ..
        } = object
        else {
            unreachable!()
        };
        let id: &'static str = ["p1", "p2", "p3", "p4"][i];
        let object = Object::Post {
            id,
            author,
            tenant,
            visibility,
            hidden,
        };
        let facts = Facts {
            follower,
            ..facts(READ)
        };
        (object, facts)
    })
    .collect();
    let me = actor("alice", Role::Member);
    let page = authz.allows_each(&me, Action::ReadPost, &asks);
    let alone: Vec<bool> = asks
        .iter()
        .map(|(object, facts)| authz.allows(&me, Action::ReadPost, object, facts))
        .collect();
    assert_eq!(page, alone);
    assert_eq!(page, [false, true, true, true]);
}

/// `Action::ALL` lists exactly the schema's actions, so every action has its slice.
#[test]
fn every_action_of_the_schema_is_known() {
    let authz = Authorizer::new();
    let mut in_schema: Vec<String> = authz
        .schema
        .actions()
        .map(|uid| uid.id().unescaped().to_owned())
        .collect();
    in_schema.sort();
    let mut known: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    known.sort();
    assert_eq!(in_schema, known);
}

/// A reload rebuilds the slices: a rule added for one action changes that action's answer.
#[test]
fn a_reload_rebuilds_each_actions_policies() {
    let authz = Authorizer::new();
    let me = actor("alice", Role::Member);
    let public = post("bob", "public", false);
    assert!(authz.allows(&me, Action::ReadPost, &public, &facts(READ)));
    let frozen = format!(
        "{DEFAULT_POLICIES}\n@id(\"no-reading\")\nforbid (principal, action == Action::\"ReadPost\", resource);\n"
    );
    authz.reload(&frozen).unwrap();
    assert!(!authz.allows(&me, Action::ReadPost, &public, &facts(READ)));
    assert!(authz.allows(
        &me,
        Action::ReadProfile,
        &profile("bob", true),
        &facts(READ)
    ));
    authz.reload(DEFAULT_POLICIES).unwrap();
    assert!(authz.allows(&me, Action::ReadPost, &public, &facts(READ)));
}

/// One name for two different objects in a batch is refused rather than decided on either.
#[test]
fn two_objects_under_one_name_are_refused() {
    let authz = Authorizer::new();
    let me = actor("alice", Role::Member);
    let asks = [
        (post("bob", "public", false), facts(READ)),
        (post("bob", "private", false), facts(READ)),
    ];
    assert_eq!(
        authz.allows_each(&me, Action::ReadPost, &asks),
        [false, false]
    );
}

/// A mixed page (own, others', every visibility, hidden, followed or not, blocked) decided in
/// classes, and later from the classes' remembered answers, answers as each post decided alone
/// by Cedar, with the default policies and with policies that name a particular user — which
/// are then decided post by post.
#[test]
fn posts_decided_by_class_answer_as_each_alone() {
    let naming = format!(
        "{DEFAULT_POLICIES}\n@id(\"carol-is-read\")\npermit (principal, action == Action::\"ReadPost\", resource)\nwhen {{ resource.author == User::\"carol\" }};\n"
    );
    let ids: Vec<String> = (0..48).map(|i| format!("p{i}")).collect();
    let mut shapes = Vec::new();
    for author in ["alice", "bob", "carol"] {
        for visibility in ["public", "followers", "private", "hidden"] {
            for (follower, blocked) in [(false, false), (true, false), (true, true), (false, true)]
            {
                shapes.push((author, visibility, follower, blocked));
            }
        }
    }
    let asks: Vec<(Object, Facts)> = shapes
        .iter()
        .zip(&ids)
        .map(|(&(author, visibility, follower, blocked), id)| {
            let hidden = visibility == "hidden";
            let object = Object::Post {
                id,
                author,
                tenant: "t1",
                visibility: if hidden { "public" } else { visibility },
                hidden,
            };
            let facts = Facts {
                follower,
                blocked,
                ..facts(READ)
            };
            (object, facts)
        })
        .collect();
    for (policies, shareable) in [(DEFAULT_POLICIES, true), (naming.as_str(), false)] {
        let authz = Authorizer::with_policies(policies).unwrap();
        assert_eq!(authz.policies.load().shareable, shareable);
        let set = authz.policies.load().for_action(Action::ReadPost).clone();
        // Each actor in turn, twice: the second page, and bob's after alice's, are answered
        // from what the first remembered, and must still be each post's own decision.
        for reader in ["alice", "bob", "alice", "bob"] {
            let me = actor(reader, Role::Member);
            let page = authz.allows_each(&me, Action::ReadPost, &asks);
            let alone: Vec<bool> = asks
                .iter()
                .map(|(object, facts)| {
                    authz.decide_distinct(&me, Action::ReadPost, &set, &[(object.clone(), facts)])
                        [0]
                    .allowed
                })
                .collect();
            assert_eq!(page, alone, "{reader}: {policies}");
            assert!(page.iter().any(|a| *a) && page.iter().any(|a| !*a));
        }
    }
    let me = actor("alice", Role::Member);
    // The policy naming carol is honoured: her private posts are read, bob's are not.
    let authz = Authorizer::with_policies(&naming).unwrap();
    let carol = Object::Post {
        id: "c1",
        author: "carol",
        tenant: "t1",
        visibility: "private",
        hidden: false,
    };
    let bob = Object::Post {
        id: "b1",
        author: "bob",
        tenant: "t1",
        visibility: "private",
        hidden: false,
    };
    assert_eq!(
        authz.allows_each(
            &me,
            Action::ReadPost,
            &[(carol, facts(READ)), (bob, facts(READ))]
        ),
        [true, false]
    );
}
